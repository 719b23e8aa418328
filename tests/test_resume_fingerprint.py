"""A checkpoint is continued only by the run that wrote it.

A command killed after a checkpoint and started again with anything changed that
changes the result (another training file of the same size, the sequence length, the
model, the optimizer and its settings, precision, remat, the steps ...) is refused
with one line naming each setting that differs (`old -> new`) and `--no-resume`; the
same command continues. A checkpoint whose weights do not fit the model is refused
with a line naming `--no-resume` too, not Keras's own message.
"""

import json

import keras
import numpy as np
import pytest

import keras_albert  # noqa: F401  (registers the task models for load_model)
from conftest import write_classifier_run
from keras_albert.cli import main
from keras_albert.training.resume import ChiefBackupAndRestore, read_checkpoint


@pytest.fixture(scope="module")
def files(data_dir, tmp_path_factory):
    """Two SST-2 training files with as many rows (48), a vocabulary, a corpus of two
    halves, and a fine-tuned classifier (untrained: a teacher for distill)."""
    import gzip

    folder = tmp_path_factory.mktemp("fingerprint")
    with open(data_dir / "sst2" / "train.tsv", encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(97)]
    (folder / "train.tsv").write_text("".join(lines[:49]), encoding="utf-8")
    (folder / "other.tsv").write_text(lines[0] + "".join(lines[49:]), encoding="utf-8")
    vocab = data_dir / "vocab" / "bert_uncased_vocab.txt"
    with gzip.open(data_dir / "corpus" / "python311_docs.txt.gz", "rt",
                   encoding="utf-8") as handle:
        corpus = [next(handle) for _ in range(1200)]
    (folder / "corpus.txt").write_text("".join(corpus[:600]), encoding="utf-8")
    (folder / "other_corpus.txt").write_text("".join(corpus[600:]), encoding="utf-8")
    write_classifier_run(folder / "teacher", vocab, seed=3)
    return {"folder": folder, "vocab": vocab}


def _argv(command, options):
    return [command] + [item for key, value in options.items()
                        for item in ((key,) if value is True else (key, str(value)))]


def _killed_after_checkpoint(monkeypatch, argv, step=2):
    """Runs `argv` in this process and stops it (as a kill would) right after the
    checkpoint of `step`: the checkpoint stays, no model is saved."""
    original = ChiefBackupAndRestore.on_train_batch_end

    def on_train_batch_end(self, batch, logs=None):
        original(self, batch, logs)
        if self.step >= step:
            raise KeyboardInterrupt(f"killed after step {self.step}")

    with monkeypatch.context() as patch:
        patch.setattr(ChiefBackupAndRestore, "on_train_batch_end", on_train_batch_end)
        with pytest.raises(KeyboardInterrupt):
            main(argv)


def _refusal(argv, capsys):
    """The one line a refused command printed (it must exit with 2)."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err[-3000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def _assert_refused(line, command, output, expected):
    assert line.startswith(f"keras-albert {command}: The checkpoint in {output / 'backup'} "
                           "was written by a run with other settings ("), line
    assert "Pass --no-resume to start over" in line, line
    for difference in expected:
        assert difference in line, (difference, line)


def test_finetune_continues_only_its_own_checkpoint(files, tmp_path, monkeypatch, capsys):
    folder, output = files["folder"], tmp_path / "run"
    options = {"--model": "bert_tiny", "--vocab": files["vocab"],
               "--train": folder / "train.tsv", "--epochs": 2, "--max-steps": 4,
               "--batch": 8, "--seq": 16, "--learning-rate": "1e-3",
               "--checkpoint-every": 1, "--output": output, "--quiet": True}
    _killed_after_checkpoint(monkeypatch, _argv("finetune", options))
    assert read_checkpoint(str(output / "backup"))["step"] == 2
    assert not (output / "model.keras").exists()

    other_file = str(folder / "other.tsv")
    changes = [  # each refused with one line naming every setting that differs
        # Another file with as many rows: the old fingerprint counted rows only.
        ({"--train": other_file}, [f'train_source.path: "{folder / "train.tsv"}" -> '
                                   f'"{other_file}"', "train_data.sha256: "]),
        ({"--seq": 32, "--precision": "mixed_bfloat16", "--remat": "full"},
         ["seq_length: 16 -> 32", 'model.encoder.precision: "float32" -> "mixed_bfloat16"',
          'model.encoder.remat: "none" -> "full"']),
        ({"--optimizer": "lamb", "--learning-rate": "2e-3", "--warmup": 0.5,
          "--weight-decay": 0.1, "--clip-norm": 0.5, "--accumulation": 2},
         ['optimizer.class: "AdamW" -> "Lamb"',
          "optimizer.learning_rate.peak_learning_rate: 0.001 -> 0.002",
          "optimizer.learning_rate.warmup_steps: 0 -> 2", "optimizer.weight_decay: 0.01 -> 0.1",
          "optimizer.global_clipnorm: 1.0 -> 0.5",
          "optimizer.gradient_accumulation_steps: null -> 2"]),
        ({"--max-steps": 6, "--epochs": 1},
         ["epochs: 2 -> 1", "max_steps: 4 -> 6", "total_steps: 4 -> 6"]),
        # Another architecture: before, Keras's own message, without --no-resume.
        ({"--model": "distilbert_tiny"},
         ['model_source: "bert_tiny" -> "distilbert_tiny"', "model.encoder.num_segments: 2 -> 0"]),
        ({"--task": "regression"}, ['task: "classification" -> "regression"']),
    ]
    for change, expected in changes:
        line = _refusal(_argv("finetune", {**options, **change}), capsys)
        _assert_refused(line, "finetune", output, expected)
    assert read_checkpoint(str(output / "backup"))["step"] == 2  # still there

    # The same command continues it (the fingerprint is the same in a new run).
    capsys.readouterr()
    assert main(_argv("finetune", options)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["resumed_at_step"] == 2 and summary["steps"] == 4
    assert (output / "model.keras").exists()


def test_distill_continues_only_its_own_checkpoint(files, tmp_path, monkeypatch, capsys):
    folder, output = files["folder"], tmp_path / "student"
    options = {"--teacher": folder / "teacher", "--train": folder / "train.tsv",
               "--epochs": 1, "--max-steps": 4, "--batch": 8, "--seq": 16,
               "--checkpoint-every": 1, "--output": output, "--quiet": True}
    _killed_after_checkpoint(monkeypatch, _argv("distill", options))
    for change, expected in [
            ({"--temperature": 3.0, "--alpha-cos": 0.0},
             ["temperature: 2.0 -> 3.0", "alpha_cos: 1.0 -> 0.0"]),
            ({"--train": folder / "other.tsv"}, ["train_data.sha256: "])]:
        line = _refusal(_argv("distill", {**options, **change}), capsys)
        _assert_refused(line, "distill", output, expected)


def test_pretrain_continues_only_its_own_checkpoint(files, tmp_path, monkeypatch, capsys):
    folder, output = files["folder"], tmp_path / "pretrained"
    options = {"--corpus": folder / "corpus.txt", "--vocab": files["vocab"],
               "--preset": "bert_tiny", "--steps": 4, "--steps-per-epoch": 4, "--batch": 8,
               "--seq": 32, "--eval-steps": 1, "--checkpoint-every": 1, "--output": output,
               "--quiet": True}
    _killed_after_checkpoint(monkeypatch, _argv("pretrain", options))
    for change, expected in [
            ({"--corpus": folder / "other_corpus.txt"}, ["corpus: "]),
            ({"--set": "num_layers=1", "--no-sop": True},
             ["model.encoder.num_layers: 2 -> 1", "sentence_order: true -> false"])]:
        line = _refusal(_argv("pretrain", {**options, **change}), capsys)
        _assert_refused(line, "pretrain", output, expected)


def test_a_checkpoint_that_does_not_fit_the_model_names_no_resume(tmp_path):
    """Keras's own message ("Layer 'dense' expected 2 variables ...") says nothing of
    what to do."""
    x = np.zeros((8, 3), "float32")

    def fitted(units, **options):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])
        model.compile("adam", "mse")
        checkpoint = ChiefBackupAndRestore(str(tmp_path / "backup"), save_freq=1,
                                           delete_checkpoint=False, **options)
        model.fit(x, np.zeros((8, units), "float32"), batch_size=4, epochs=1, verbose=0,
                  callbacks=[checkpoint])
        return model

    fitted(2)
    assert read_checkpoint(str(tmp_path / "backup"))["step"] == 2
    with pytest.raises(ValueError) as refused:
        fitted(5)
    message = str(refused.value)
    assert message.startswith(f"The checkpoint in {tmp_path / 'backup'} does not fit this "
                              "model (")
    assert "Pass --no-resume to start over" in message and "\n" not in message
