"""Tests of the fine-tuning data modules of keras_albert.training (task_files, task_labels,
tfds_tasks, length_buckets, task_dataset: files -> bucketed tf.data) and keras_albert.metrics.

References: the shared GLUE / IMDB files read with plain Python string splitting (or
the csv module's default quoting for the CSV-quoted RTE), the `Preprocessor` itself for
the packed ids, and scikit-learn / SciPy for every metric.
"""

import csv
import gzip
import importlib
import json
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_albert import Encoder
from keras_albert.models import SequenceClassifier
from keras_albert.tokenizers import Preprocessor
from keras_albert.tokenizers import WordPieceTokenizer
from keras_albert import metrics as task_metrics
from keras_albert.training import tfds_tasks
from keras_albert.training.length_buckets import choose_bucket_boundaries
from keras_albert.training.task_dataset import batch_widths
from keras_albert.training.task_dataset import padding_efficiency
from keras_albert.training.task_dataset import restore_order
from keras_albert.training.task_dataset import steps_per_epoch
from keras_albert.training.task_dataset import task_dataset
from keras_albert.training.task_files import load_task_file
from keras_albert.training.tfds_tasks import load_tfds


SEQ_LENGTH = 128


def plain_rows(path):
    """Header and rows of a GLUE TSV by plain splitting on tabs (no quoting rules)."""
    with open(path, encoding="utf-8-sig") as handle:
        lines = handle.read().split("\n")
    rows = [line.split("\t") for line in lines if line]
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def scipy_stats():
    # Test-only references; the data tests run without them.
    return importlib.import_module("scipy.stats")


@pytest.fixture(scope="module")
def sklearn_metrics():
    return importlib.import_module("sklearn.metrics")


@pytest.fixture(scope="module")
def preprocessor(data_dir):
    tokenizer = WordPieceTokenizer(vocabulary=str(data_dir / "vocab" / "bert_uncased_vocab.txt"))
    return Preprocessor(tokenizer, seq_length=SEQ_LENGTH)


@pytest.fixture(scope="module")
def sst2_dev(data_dir):
    return load_task_file(data_dir / "sst2" / "dev.tsv")


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize(
    "path, count, segments, task",
    [
        ("sst2/train.tsv", 67_349, 1, "classification"),
        ("sst2/dev.tsv", 872, 1, "classification"),
        ("imdb/train.tsv.gz", 25_000, 1, "classification"),
        ("mrpc/train.tsv", 3_668, 2, "classification"),
        ("mrpc/dev.tsv", 408, 2, "classification"),
        ("stsb/train.tsv", 5_749, 2, "regression"),
        ("stsb/dev.tsv", 1_500, 2, "regression"),
        ("rte/train.tsv", 2_490, 2, "classification"),
        ("rte/dev.tsv", 277, 2, "classification"),
    ],
)
def test_real_files_row_counts(data_dir, path, count, segments, task):
    data = load_task_file(data_dir / path)
    assert len(data) == count and len(data.labels) == count
    assert data.num_segments == segments and data.task == task
    if task == "classification":
        assert data.labels.dtype == np.int32 and set(np.unique(data.labels)) == {0, 1}
        assert data.num_classes == 2


def test_sst2_rows_equal_plain_split(data_dir):
    header, rows = plain_rows(data_dir / "sst2" / "train.tsv")
    assert header == ["sentence", "label"]
    data = load_task_file(data_dir / "sst2" / "train.tsv")
    assert data.texts[0][0] == rows[0][0] == "hide new secretions from the parental units"
    assert data.texts[0] == [row[0] for row in rows]
    np.testing.assert_array_equal(data.labels, [int(row[1]) for row in rows])
    limited = load_task_file(data_dir / "sst2" / "train.tsv", limit=5)
    assert limited.texts[0] == [row[0] for row in rows[:5]]


def test_mrpc_pairs_keep_quote_characters(data_dir):
    header, rows = plain_rows(data_dir / "mrpc" / "dev.tsv")
    assert header[0] == "Quality"  # the BOM is gone
    data = load_task_file(data_dir / "mrpc" / "dev.tsv")
    assert data.texts[0] == [row[3] for row in rows]
    assert data.texts[1] == [row[4] for row in rows]
    np.testing.assert_array_equal(data.labels, [int(row[0]) for row in rows])
    # A field that opens a quote and never closes it stays text.
    assert data.texts[1][0].startswith('"The foodservice pie business')


def test_stsb_scores_are_floats(data_dir):
    header, rows = plain_rows(data_dir / "stsb" / "train.tsv")
    data = load_task_file(data_dir / "stsb" / "train.tsv")
    assert data.labels.dtype == np.float32 and data.num_classes == 1
    np.testing.assert_allclose(data.labels, [float(row[-1]) for row in rows])
    assert data.labels.min() >= 0.0 and data.labels.max() <= 5.0
    assert (data.texts[0][1], data.labels[1]) == ("A man is playing a large flute.", 3.8)


def test_rte_csv_quoted_rows(data_dir):
    path = data_dir / "rte" / "train.tsv"
    with open(path, encoding="utf-8", newline="") as handle:
        reference = list(csv.DictReader(handle, delimiter="\t"))
    data = load_task_file(path)
    assert data.texts[0] == [row["sentence1"] for row in reference]
    assert data.texts[1] == [row["sentence2"] for row in reference]
    quoted = [t for t in data.texts[0] if "extensive" in t and "Valero" in t]
    assert set(quoted) == {  # RTE repeats this premise
        'Valero Energy Corp., on Monday, said it found "extensive" additional damage at '
        "its 250,000-barrel-per-day Port Arthur refinery."
    }


def test_imdb_gzip_labels_and_transform(data_dir):
    path = data_dir / "imdb" / "train.tsv.gz"
    data = load_task_file(path, transform=lambda text: text.replace("<br />", " "), limit=2000)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        handle.readline()
        first = handle.readline().rstrip("\n").split("\t")
    assert data.texts[0][0] == first[3].replace("<br />", " ")
    assert data.labels[0] == int(first[0])
    assert not any("<br />" in text for text in data.texts[0])
    full = load_task_file(path)
    assert int(full.labels.sum()) == 12_500


# --------------------------------------------------------------------------- own files


def test_jsonl_multilabel_and_pairs(tmp_path):
    path = tmp_path / "tags.jsonl"
    rows = [{"text": "a", "labels": ["sports", "news"]}, {"text": "b", "labels": []},
            {"text": "c", "labels": ["art"]}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + "\n", encoding="utf-8")
    data = load_task_file(path)
    assert data.task == "multilabel" and data.label_names == ["art", "news", "sports"]
    np.testing.assert_array_equal(data.labels, [[0, 1, 1], [0, 0, 0], [1, 0, 0]])
    assert data.labels.dtype == np.float32 and data.num_classes == 3

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"premise": "p", "hypothesis": "h", "label": 2.5}\n'
                     '{"premise": "q", "hypothesis": "i", "label": 1}\n', encoding="utf-8")
    data = load_task_file(pairs)
    assert data.texts == (["p", "q"], ["h", "i"]) and data.task == "regression"
    np.testing.assert_allclose(data.labels, [2.5, 1.0])


def test_csv_string_labels_and_tsv_multilabel(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('review,label\n"Great, really ""great""",pos\nmeh,neg\nok,neu\n',
                    encoding="utf-8")
    data = load_task_file(path)
    assert data.texts == (['Great, really "great"', "meh", "ok"],)
    assert data.label_names == ["neg", "neu", "pos"]
    np.testing.assert_array_equal(data.labels, [2, 0, 1])
    given = load_task_file(path, label_names=["pos", "neg", "neu"])
    np.testing.assert_array_equal(given.labels, [0, 1, 2])

    tsv = tmp_path / "tags.tsv"
    tsv.write_text("sentence\tlabels\nx\t0|2\ny\t1\n", encoding="utf-8")
    data = load_task_file(tsv)
    assert data.task == "multilabel"
    np.testing.assert_array_equal(data.labels, [[1, 0, 1], [0, 1, 0]])


def test_split_is_deterministic(sst2_dev):
    rest, held = sst2_dev.split(0.1, seed=3)
    again_rest, again_held = sst2_dev.split(0.1, seed=3)
    assert held.texts == again_held.texts and rest.texts == again_rest.texts
    assert len(held) == 87 and len(rest) == 785
    assert sorted(held.texts[0] + rest.texts[0]) == sorted(sst2_dev.texts[0])
    assert sst2_dev.split(0.1, seed=4)[1].texts != held.texts


def test_bad_inputs(tmp_path):
    missing = tmp_path / "nope.tsv"
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        load_task_file(missing)
    empty = tmp_path / "empty.tsv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        load_task_file(empty)
    header_only = tmp_path / "header.tsv"
    header_only.write_text("sentence\tlabel\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no rows"):
        load_task_file(header_only)
    good = tmp_path / "good.tsv"
    good.write_text("sentence\tlabel\na\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"'sentnce'.*\['sentence', 'label'\]"):
        load_task_file(good, text_columns="sentnce")
    no_text = tmp_path / "odd.tsv"
    no_text.write_text("words\tlabel\na\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\['words', 'label'\].*text_columns"):
        load_task_file(no_text)
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("sentence\tlabel\na\t1\nb\t0\textra\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3: expected 2 fields"):
        load_task_file(ragged)
    scores = tmp_path / "scores.tsv"
    scores.write_text("sentence\tscore\na\t1.5\nb\tabc\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3.*'abc'"):
        load_task_file(scores, task="regression")
    unknown_format = tmp_path / "good.data"
    unknown_format.write_bytes(good.read_bytes())
    with pytest.raises(ValueError, match="extension"):
        load_task_file(unknown_format)


def test_load_tfds_offline_fails_fast(tmp_path):
    importlib.import_module("tensorflow_datasets")
    start = time.monotonic()
    message = "cannot download TFDS dataset 'glue/sst2': no network.*load_task_file"
    with pytest.raises(ConnectionError, match=message):
        load_tfds("glue/sst2", "validation", timeout=3.0, data_dir=str(tmp_path))
    assert time.monotonic() - start < 3.0 + 1.5


def test_load_tfds_reads_a_prepared_dataset(monkeypatch, tmp_path):
    tfds = importlib.import_module("tensorflow_datasets")
    # Pretend the dataset is prepared; TFDS's mock generates examples from the features.
    def prepared(module, name, data_dir, timeout):
        return module.builder(name, data_dir=data_dir), True

    monkeypatch.setattr(tfds_tasks, "_tfds_prepared", prepared)
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        mrpc = load_tfds("glue/mrpc", "train", data_dir=str(tmp_path))
        stsb = load_tfds("glue/stsb", "validation", data_dir=str(tmp_path))
    assert len(mrpc) == 6 and mrpc.num_segments == 2 and mrpc.task == "classification"
    assert mrpc.label_names == ["not_equivalent", "equivalent"]
    assert all(isinstance(text, str) for text in mrpc.texts[1])
    assert stsb.task == "regression" and stsb.labels.dtype == np.float32


def test_load_tfds_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'keras-albert\[tfds\]'"):
        load_tfds("imdb_reviews", "train")


# --------------------------------------------------------------------------- task_dataset


KEYS = ("input_word_ids", "input_mask", "input_type_ids")


def _unpadded(features, rows=None):
    """Each row's (word ids, mask, type ids) without its padding, as tuples of lists."""
    arrays = {key: np.asarray(features[key]) for key in KEYS}
    mask = arrays["input_mask"].astype(bool)
    rows = range(len(mask)) if rows is None else rows
    return [tuple(arrays[key][r][mask[r]].tolist() for key in KEYS) for r in rows]


def _unpadded_rows(dataset):
    return [row for x, _ in dataset for row in _unpadded(x)]


def test_bucketing_bounds_shapes_and_saves_padding(sst2_dev, preprocessor):
    dataset = task_dataset(sst2_dev, preprocessor, batch_size=32, max_shapes=8)
    widths = batch_widths(dataset)
    assert len(widths) <= 8 and max(widths) <= SEQ_LENGTH
    assert set(widths) <= set(dataset.bucket_boundaries)
    fixed = task_dataset(sst2_dev, preprocessor, batch_size=32, bucket_boundaries=None)
    assert batch_widths(fixed) == [SEQ_LENGTH]
    bucketed_efficiency, fixed_efficiency = padding_efficiency(dataset), padding_efficiency(fixed)
    assert bucketed_efficiency >= 2 * fixed_efficiency
    assert bucketed_efficiency > 0.8
    few = task_dataset(sst2_dev, preprocessor, batch_size=32, max_shapes=3)
    assert len(batch_widths(few)) <= 3
    assert steps_per_epoch(dataset) == int(dataset.cardinality()) == len(list(dataset))
    x, y = next(iter(dataset))
    assert {v.dtype for v in x.values()} == {tf.int32} and y.dtype == tf.int32


def test_label_types_and_unlabelled_batches(tmp_path, data_dir, preprocessor):
    stsb = load_task_file(data_dir / "stsb" / "dev.tsv", limit=40)
    x, y = next(iter(task_dataset(stsb, preprocessor, batch_size=8)))
    assert y.dtype == tf.float32 and y.shape == (8,)
    assert x["input_type_ids"].numpy().max() == 1  # pairs
    path = tmp_path / "tags.jsonl"
    path.write_text('{"text": "a b c", "labels": [0, 2]}\n{"text": "d", "labels": [1]}\n',
                    encoding="utf-8")
    tags = load_task_file(path)
    x, y = next(iter(task_dataset(tags, preprocessor, batch_size=4)))
    assert y.dtype == tf.float32 and y.shape == (2, 3)
    unlabelled = load_task_file(data_dir / "sst2" / "dev.tsv", label_column=False, limit=10)
    assert unlabelled.labels is None
    element = next(iter(task_dataset(unlabelled, preprocessor, batch_size=4)))
    assert isinstance(element, dict) and set(element) == set(KEYS)


def test_choose_bucket_boundaries():
    lengths = [5] * 100 + [20] * 10 + [100] * 1
    assert choose_bucket_boundaries(lengths, 128, max_shapes=3) == [8, 24, 128]
    assert choose_bucket_boundaries(lengths, 128, max_shapes=1) == [128]
    assert len(choose_bucket_boundaries(np.arange(2, 129), 128, max_shapes=5)) == 5


def test_tokens_equal_the_preprocessor(sst2_dev, preprocessor, data_dir):
    dataset, order = task_dataset(sst2_dev, preprocessor, batch_size=16, return_order=True)
    expected = _unpadded(preprocessor(tf.constant(sst2_dev.texts[0])), order)
    assert _unpadded_rows(dataset) == expected
    labels = np.concatenate([y.numpy() for _, y in dataset])
    np.testing.assert_array_equal(restore_order(labels, order), sst2_dev.labels)

    # Pairs truncated longest-first to a short seq_length, sorted by length.
    mrpc = load_task_file(data_dir / "mrpc" / "dev.tsv", limit=100)
    short = Preprocessor(preprocessor.tokenizer, seq_length=48)
    dataset, order = task_dataset(mrpc, short, batch_size=16, sort_by_length=True)
    expected = _unpadded(short((tf.constant(mrpc.texts[0]), tf.constant(mrpc.texts[1]))), order)
    assert _unpadded_rows(dataset) == expected
    assert max(batch_widths(dataset)) <= 48


def test_shuffle_is_deterministic_and_complete(sst2_dev, preprocessor):
    def epochs(seed, count=2):
        dataset = task_dataset(sst2_dev, preprocessor, batch_size=32, shuffle=True,
                               seed=seed, repeat=True)
        steps = steps_per_epoch(dataset)
        batches = [x["input_word_ids"].numpy() for x, _ in dataset.take(count * steps)]
        return [batches[i * steps:(i + 1) * steps] for i in range(count)]

    first, again, other = epochs(1), epochs(1), epochs(2, count=1)
    for a, b in zip(first[0] + first[1], again[0] + again[1]):
        np.testing.assert_array_equal(a, b)
    assert any(a.shape != b.shape or (a != b).any() for a, b in zip(first[0], other[0]))
    assert any(a.shape != b.shape or (a != b).any() for a, b in zip(first[0], first[1]))
    unshuffled = task_dataset(sst2_dev, preprocessor, batch_size=32)

    def row_multiset(batches):
        return sorted(tuple(row[row != 0].tolist()) for batch in batches for row in batch)

    reference = row_multiset(x["input_word_ids"].numpy() for x, _ in unshuffled)
    assert row_multiset(first[0]) == reference == row_multiset(first[1])


# --------------------------------------------------------------------------- metrics


def _stream(metric, y_true, y_pred, batch=37, graph=False):
    metric.reset_state()
    update = tf.function(metric.update_state, jit_compile=True) if graph else metric.update_state
    for start in range(0, len(y_true), batch):
        update(y_true[start:start + batch], y_pred[start:start + batch])
    return float(metric.result())


@pytest.mark.parametrize("graph", [False, True])
def test_metrics_stream_like_references(graph, scipy_stats, sklearn_metrics):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    logits = rng.normal(size=(300, 2)).astype("float32") + 0.6 * labels[:, None] * [-1, 1]
    predicted = logits.argmax(1)
    f1 = task_metrics.SparseF1()
    assert _stream(f1, labels, logits, graph=graph) == pytest.approx(
        sklearn_metrics.f1_score(labels, predicted), abs=1e-6)
    single = (logits[:, 1:] - logits[:, :1])  # [N, 1] logits, positive when > 0
    assert _stream(task_metrics.SparseF1(), labels, single, graph=graph) == pytest.approx(
        sklearn_metrics.f1_score(labels, predicted), abs=1e-6)
    assert _stream(task_metrics.MatthewsCorrelation(), labels, logits, graph=graph) == \
        pytest.approx(sklearn_metrics.matthews_corrcoef(labels, predicted), abs=1e-6)

    labels3 = rng.integers(0, 3, 300)
    logits3 = rng.normal(size=(300, 3)).astype("float32") + np.eye(3)[labels3]
    assert _stream(task_metrics.MatthewsCorrelation(3), labels3, logits3, graph=graph) == \
        pytest.approx(sklearn_metrics.matthews_corrcoef(labels3, logits3.argmax(1)), abs=1e-6)

    scores = (rng.normal(size=300) * 1.5 + 2.5).astype("float32")
    outputs = (0.7 * scores + rng.normal(size=300) + 40.0).astype("float32")[:, None]
    pearson = task_metrics.PearsonCorrelation()
    assert _stream(pearson, scores, outputs, graph=graph) == pytest.approx(
        scipy_stats.pearsonr(scores, outputs[:, 0])[0], abs=1e-5)
    keras_pearson = keras.metrics.PearsonCorrelation()  # per-batch average: not this
    assert abs(_stream(keras_pearson, scores, outputs[:, 0]) - float(pearson.result())) > 1e-4

    multi_true = (rng.random((300, 5)) < 0.3).astype("float32")
    multi_logits = rng.normal(size=(300, 5)).astype("float32") + 1.2 * (multi_true - 0.5)
    assert _stream(task_metrics.MultiLabelF1(), multi_true, multi_logits, graph=graph) == \
        pytest.approx(sklearn_metrics.f1_score(multi_true, multi_logits > 0, average="micro"),
                      abs=1e-6)


def test_metric_reset_config_and_weights(scipy_stats, sklearn_metrics):
    metric = task_metrics.PearsonCorrelation()
    metric.update_state([1.0, 2.0, 3.0], [3.0, 1.0, 2.0])
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state([1.0, 2.0, 3.0, 4.0], [1.0, 2.5, 2.9, 4.2])
    assert float(metric.result()) == pytest.approx(
        scipy_stats.pearsonr([1, 2, 3, 4], [1, 2.5, 2.9, 4.2])[0], abs=1e-6)
    for cls, kwargs in [(task_metrics.SparseF1, {"positive_class": 0}),
                        (task_metrics.MatthewsCorrelation, {"num_classes": 4}),
                        (task_metrics.MultiLabelF1, {"threshold": 0.5}),
                        (task_metrics.PearsonCorrelation, {})]:
        metric = cls(**kwargs)
        config = keras.saving.serialize_keras_object(metric)
        restored = keras.saving.deserialize_keras_object(config)
        assert type(restored) is cls and restored.get_config() == metric.get_config()
    weighted = task_metrics.SparseF1()
    weighted.update_state([1, 1, 0], [[0, 1], [1, 0], [0, 1]], sample_weight=[2.0, 1.0, 0.0])
    assert float(weighted.result()) == pytest.approx(
        sklearn_metrics.f1_score([1, 1, 0], [1, 0, 1], sample_weight=[2, 1, 0]))


def test_numpy_metrics_and_reports(scipy_stats, sklearn_metrics):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    logits = rng.normal(size=(200, 2)) + labels[:, None] * [-0.5, 0.5]
    predicted = logits.argmax(1)
    report = task_metrics.evaluate_predictions("classification", logits, labels)
    assert report == pytest.approx({
        "accuracy": sklearn_metrics.accuracy_score(labels, predicted),
        "f1": sklearn_metrics.f1_score(labels, predicted),
        "mcc": sklearn_metrics.matthews_corrcoef(labels, predicted),
    })
    assert task_metrics.matthews(np.zeros(5, int), np.zeros(5, int)) == 0.0

    scores = np.round(rng.random(200) * 5, 1)  # ties, as STS-B has
    outputs = np.round(scores + rng.normal(size=200), 0)
    report = task_metrics.evaluate_predictions("regression", outputs[:, None], scores)
    assert report["pearson"] == pytest.approx(scipy_stats.pearsonr(outputs, scores)[0])
    assert report["spearman"] == pytest.approx(scipy_stats.spearmanr(outputs, scores)[0])

    multi_true = (rng.random((100, 4)) < 0.4).astype(float)
    multi_logits = rng.normal(size=(100, 4)) + multi_true - 0.5
    report = task_metrics.evaluate_predictions("multilabel", multi_logits, multi_true)
    assert report == pytest.approx({
        "micro_f1": sklearn_metrics.f1_score(multi_true, multi_logits > 0, average="micro"),
        "exact_match": sklearn_metrics.accuracy_score(multi_true, multi_logits > 0),
    })


def test_metrics_in_fit_and_evaluate(data_dir, preprocessor):
    data = load_task_file(data_dir / "sst2" / "train.tsv", limit=128)
    keras.utils.set_random_seed(0)
    model = SequenceClassifier(Encoder.from_preset("bert_tiny"), num_classes=2)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=task_metrics.task_metrics("classification", 2),
    )
    train = task_dataset(data, preprocessor, batch_size=32, shuffle=True, repeat=True)
    history = model.fit(train, epochs=2, steps_per_epoch=steps_per_epoch(train), shuffle=False,
                        verbose=0)
    for name in ("accuracy", "f1", "mcc"):
        assert len(history.history[name]) == 2
        assert all(-1.0 <= value <= 1.0 for value in history.history[name])

    evaluation, order = task_dataset(data, preprocessor, batch_size=32, return_order=True)
    results = model.evaluate(evaluation, return_dict=True, verbose=0)
    logits = restore_order(model.predict(evaluation, verbose=0), order)
    report = task_metrics.evaluate_predictions("classification", logits, data.labels)
    for name in ("accuracy", "f1", "mcc"):
        assert results[name] == pytest.approx(report[name], abs=1e-5)
    # A second evaluate starts from reset metrics.
    assert model.evaluate(evaluation, return_dict=True, verbose=0)["mcc"] == pytest.approx(
        results["mcc"], abs=1e-6)
