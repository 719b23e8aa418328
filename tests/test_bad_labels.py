"""Bad labels and unreadable files are refused when the data is read, before a model is
built: one line naming the file, the line and the value, and nothing written.

Most cases read with `read_task_splits` (what `finetune` and `distill` call first); a
few run the CLI end to end to check the exit code, the one-line message and that
`--output` is never made.
"""

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import subprocess_env
from keras_albert.training.task_sources import read_task_splits


def _tsv(path, labels, column="label"):
    rows = [f"text number {i}\t{label}\n" for i, label in enumerate(labels)]
    path.write_text(f"sentence\t{column}\n" + "".join(rows), encoding="utf-8")
    return str(path)


def _jsonl(path, objects):
    path.write_text("".join(json.dumps(row) + "\n" for row in objects), encoding="utf-8")
    return str(path)


def _refused(message, train, evaluation=None):
    with pytest.raises(ValueError) as caught:
        read_task_splits(train, eval_spec=evaluation)
    assert str(caught.value) == message


# === labels ===========================================================================


def test_minus_one_and_one_are_class_names(tmp_path):
    train = _tsv(tmp_path / "train.tsv", ["1", "-1", "1", "-1"])
    dev = _tsv(tmp_path / "dev.tsv", ["-1", "+1"])
    data, evaluation = read_task_splits(train, eval_spec=dev)
    assert data.label_names == ["-1", "1"] and data.num_classes == 2
    np.testing.assert_array_equal(data.labels, [1, 0, 1, 0])
    np.testing.assert_array_equal(evaluation.labels, [0, 1])
    # With int names, 0 is not an id but a class the training data lacks.
    bad = _tsv(tmp_path / "bad.tsv", ["1", "0"])
    _refused(f"{bad}, line 3: unknown label '0' in column 'label'; the label names are "
             "['-1', '1'].", train, bad)


def test_blank_label_is_refused(tmp_path):
    blank = _tsv(tmp_path / "blank.tsv", ["pos", "neg", " ", "pos"])
    _refused(f"{blank}, line 4: blank label in column 'label'; every example needs one.",
             blank)
    null = _jsonl(tmp_path / "null.jsonl", [{"text": "a", "label": 1},
                                            {"text": "b", "label": None}])
    _refused(f"{null}, line 2: blank label in column 'label'; every example needs one.",
             null)


def test_evaluation_class_the_training_ids_lack_is_refused(tmp_path):
    train = _tsv(tmp_path / "train.tsv", ["0", "1", "1", "0"])
    dev = _tsv(tmp_path / "dev.tsv", ["1", "0", "2"])
    _refused(f"{dev}, line 4: unknown label '2' in column 'label'; the labels are class "
             "ids 0 to 1.", train, dev)
    names = _tsv(tmp_path / "names.tsv", ["pos", "neg"])
    _refused(f"{names}, line 2: unknown label 'pos' in column 'label'; the labels are "
             "class ids 0 to 1.", train, names)


def test_multilabel_evaluation_fits_the_training_labels(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", [{"text": "a", "labels": [0, 2]},
                                              {"text": "b", "labels": [1]}])
    dev = _jsonl(tmp_path / "dev.jsonl", [{"text": "c", "labels": [1]}])
    _, evaluation = read_task_splits(train, eval_spec=dev)
    np.testing.assert_array_equal(evaluation.labels, [[0, 1, 0]])  # the training width
    unknown = _jsonl(tmp_path / "unknown.jsonl", [{"text": "c", "labels": [0, 3]}])
    _refused(f"{unknown}, line 1: unknown label '3' in column 'labels'; the labels are "
             "class ids 0 to 2.", train, unknown)
    blank = _jsonl(tmp_path / "blank.jsonl", [{"text": "a", "labels": ["art", ""]}])
    _refused(f"{blank}, line 1: the label '' in the list in column 'labels' is neither a "
             "label name nor an int id.", blank)


def test_token_tags_of_evaluation_data_must_be_training_ids(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", [{"tokens": ["a", "b"], "tags": [0, 1]}])
    dev = _jsonl(tmp_path / "dev.jsonl", [{"tokens": ["c"], "tags": [0]},
                                          {"tokens": ["d", "e"], "tags": [1, 2]}])
    _refused(f"{dev}, line 2: unknown label 2 in column 'tags'; the labels are class ids "
             "0 to 1.", train, dev)
    blank = _jsonl(tmp_path / "blank.jsonl", [{"tokens": ["a"], "tags": [""]}])
    _refused(f"{blank}, line 1: blank label in column 'tags'; every example needs one.",
             blank)


# === files ============================================================================


def _latin1_rows():
    return "sentence\tlabel\ngood film\t1\nun caf\xe9 noir\t0\n".encode("latin-1")


@pytest.mark.parametrize("name", ["reviews.tsv", "reviews.tsv.gz"])
def test_bytes_that_are_not_utf8_name_the_line(tmp_path, name):
    path = tmp_path / name
    write = gzip.compress if name.endswith(".gz") else bytes
    path.write_bytes(write(_latin1_rows()))
    _refused(f"{path}, line 3: not UTF-8 text (byte 0xe9 at byte 7 of the line: invalid "
             "continuation byte); save the file as UTF-8.", str(path))


def test_binary_file_is_not_utf8(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"text": "a", "label": 1}\n\x89PNG\r\n\x1a\n\x00\x00')
    _refused(f"{path}, line 2: not UTF-8 text (byte 0x89 at byte 1 of the line: invalid "
             "start byte); save the file as UTF-8.", str(path))


def test_corrupt_gzip_is_named(tmp_path):
    fake = tmp_path / "fake.tsv.gz"
    fake.write_bytes(b"sentence\tlabel\n")
    _refused(f"{fake}, line 1: not a gzip file (Not a gzipped file (b'se')).", str(fake))
    cut = tmp_path / "cut.tsv.gz"
    rows = "sentence\tlabel\n" + "".join(f"text {i}\t{i % 2}\n" for i in range(3000))
    cut.write_bytes(gzip.compress(rows.encode())[:-200])
    with pytest.raises(ValueError, match=rf"^{cut}, line \d+: corrupt gzip data "
                       r"\(Compressed file ended before the end-of-stream marker was "
                       r"reached\)\.$"):
        read_task_splits(str(cut))


# === the command line =================================================================


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "keras_albert.cli", *args],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)


def _finetune(data_dir, output, *args):
    vocab = data_dir / "vocab" / "bert_uncased_vocab.txt"
    return _cli("finetune", "--model", "bert_tiny", "--vocab", str(vocab), "--max-steps",
                "1", "--batch", "4", "--seq", "16", "--output", str(output), "--quiet",
                *args)


def _assert_refused(result, command, message, output):
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("keras-albert")]
    assert lines == [f"keras-albert {command}: {message}"]
    assert not output.exists()


def test_cli_refuses_an_unknown_evaluation_class_before_writing(tmp_path, data_dir):
    train = _tsv(tmp_path / "train.tsv", ["0", "1", "1", "0"])
    dev = _tsv(tmp_path / "dev.tsv", ["1", "2"])
    output = tmp_path / "run"
    _assert_refused(_finetune(data_dir, output, "--train", train, "--eval", dev), "finetune",
                    f"{dev}, line 3: unknown label '2' in column 'label'; the labels are "
                    "class ids 0 to 1.", output)


def test_cli_distill_refuses_a_teacher_with_other_classes(tmp_path, data_dir):
    # The teacher trains on -1 / 1 labels (class names): it has two classes.
    teacher = tmp_path / "teacher"
    two = _tsv(tmp_path / "two.tsv", ["1", "-1", "1", "-1"])
    result = _finetune(data_dir, teacher, "--train", two)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1])["label_names"] == ["-1", "1"]
    three = _tsv(tmp_path / "three.tsv", ["0", "1", "2", "1"])
    output = tmp_path / "student"
    result = _cli("distill", "--teacher", str(teacher), "--train", three, "--max-steps", "1",
                  "--batch", "4", "--seq", "16", "--output", str(output), "--quiet")
    _assert_refused(result, "distill",
                    f"The teacher {teacher / 'model.keras'} has 2 classes but the training "
                    "data has 3 classes: distil on data labelled like the teacher's.", output)
