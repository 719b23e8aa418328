"""A loss that becomes NaN or infinite stops training with an error (exit code 2 from
the command line, "training stopped at step N: the loss is nan"), saves no model and
keeps the checkpoints written before that step. Before, `--learning-rate 1e30` exited
0 with an all-NaN model.keras."""

import re

import h5py
import keras
import numpy as np
import pytest

import keras_albert  # noqa: F401  (registers the task models for load_model)
from keras_albert.cli import main
from keras_albert.training.resume import read_checkpoint
from keras_albert.training.run_directory import NonFiniteLoss


@pytest.fixture(scope="module")
def train_file(data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("nan") / "train.tsv"
    with open(data_dir / "sst2" / "train.tsv", encoding="utf-8") as handle:
        path.write_text("".join(next(handle) for _ in range(49)), encoding="utf-8")
    return path


def _all_finite(weights_file):
    values = []
    with h5py.File(weights_file, "r") as handle:
        handle.visititems(lambda name, item: values.append(item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return bool(values) and all(np.all(np.isfinite(value)) for value in values
                                if np.issubdtype(np.asarray(value).dtype, np.floating))


def test_a_diverging_command_stops_with_exit_code_2_and_saves_no_model(
        train_file, data_dir, tmp_path, capsys):
    output = tmp_path / "run"
    code = main(["finetune", "--model", "bert_tiny", "--vocab",
                 str(data_dir / "vocab" / "bert_uncased_vocab.txt"), "--train", str(train_file),
                 "--epochs", "1", "--max-steps", "5", "--batch", "8", "--seq", "16",
                 "--learning-rate", "1e30", "--warmup", "0", "--checkpoint-every", "1",
                 "--output", str(output), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    line = err.strip().splitlines()[-1]
    stopped = re.match(r"keras-albert finetune: training stopped at step (\d+): the loss is "
                       r"(nan|inf|-inf) ", line)
    assert stopped, line
    assert not (output / "model.keras").exists() and not (output / "summary.json").exists()
    # The checkpoints before the step stay; none was written at or after it.
    assert read_checkpoint(str(output / "backup"))["step"] == int(stopped.group(1)) - 1


class _NanFromStep(keras.optimizers.schedules.LearningRateSchedule):
    """1e-3, then NaN from optimizer step `first` on (0-based: update `first + 1`)."""

    def __init__(self, first):
        self.first = first

    def __call__(self, step):
        return keras.ops.where(step >= self.first, float("nan"), 1e-3)

    def get_config(self):
        return {"first": self.first}


def test_training_stops_at_the_first_nan_loss_and_keeps_the_good_checkpoint(
        train_file, data_dir, tmp_path):
    from keras_albert import Encoder
    from keras_albert.models.task_kinds import task_model
    from keras_albert.tokenizers import Preprocessor, WordPieceTokenizer
    from keras_albert.training.finetune import finetune
    from keras_albert.training.task_files import load_task_file

    preprocessor = Preprocessor(
        WordPieceTokenizer(str(data_dir / "vocab" / "bert_uncased_vocab.txt")), seq_length=16)
    model = task_model(Encoder.from_preset(
        "bert_tiny", vocabulary_size=preprocessor.tokenizer.vocabulary_size, seed=1),
        "classification", 2)
    output = tmp_path / "run"
    # Update 5 makes the weights NaN, so the loss of step 6 is the first NaN one.
    with pytest.raises(NonFiniteLoss, match=r"^training stopped at step 6: the loss is nan "):
        finetune(model, preprocessor, load_task_file(str(train_file)), str(output),
                 lambda steps: keras.optimizers.SGD(_NanFromStep(4)), epochs=1,
                 batch_size=8, max_steps=6, checkpoint_every=2, verbose=0)
    assert not (output / "model.keras").exists()
    state = read_checkpoint(str(output / "backup"))
    assert state["step"] == 4  # the last one before the NaN step, with finite weights
    assert _all_finite(f"{state['path']}/model.weights.h5")
