"""Exact resumption: a training process killed with SIGKILL mid-epoch and started
again with `--resume` ends with the weights of an uninterrupted run.

- The data stream (`keras_albert.training.resumable_streams.task_stream`): a stream
  started at step `s` is the tail of the one started at 0, batch for batch, and every
  epoch holds every example exactly once. So a run that resumes at step `s` sees every
  example exactly as often as an uninterrupted one.
- `keras-albert finetune` on real SST-2 rows, killed (SIGKILL) right after a
  mid-epoch checkpoint and restarted with `--resume`: final weights equal the
  uninterrupted run's (<= 1e-6). Dropout is on (the RNG state is in the checkpoint),
  the optimizer is AdamW with a warm-up / decay schedule (its slots and step count
  are in the checkpoint). A one-batch shift of the data position changes the final
  weights far beyond that tolerance (measured in `test_a_wrong_data_position_is_visible`),
  so equal weights mean the same batches in the same order.
- `keras-albert pretrain` with AdaFactor (factored slots) killed mid-epoch and resumed.
- The same CLI under `--strategy multi_worker` with two worker processes on
  127.0.0.1: one worker is killed with SIGKILL, the job is restarted, and both
  workers end with the uninterrupted 2-worker run's weights.
"""

import json
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_albert  # noqa: F401  (registers the task models for load_model)

from conftest import free_ports, subprocess_env

ROOT = str(pathlib.Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def sst2_rows(data_dir, tmp_path_factory):
    """The first 320 rows of SST-2's training file, as a small task file."""
    path = tmp_path_factory.mktemp("task") / "train.tsv"
    with open(data_dir / "sst2" / "train.tsv", encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(321)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def vocab(data_dir):
    return data_dir / "vocab" / "bert_uncased_vocab.txt"


def _finetune_args(train, vocab, output, *extra, epochs=3):
    return ["finetune", "--model", "bert_tiny", "--vocab", str(vocab), "--train", str(train),
            "--epochs", str(epochs), "--batch", "16", "--seq", "32", "--learning-rate", "2e-3",
            "--checkpoint-every", "3", "--seed", "5", "--output", str(output), "--quiet",
            *extra]


def _start(args, **env):
    return subprocess.Popen([sys.executable, "-m", "keras_albert.cli", *args],
                            env=subprocess_env(**env), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process, timeout=600):
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr[-4000:]
    return json.loads(stdout.strip().splitlines()[-1])


def _checkpoint(output):
    """(step, steps_per_epoch) of the newest complete checkpoint, or None."""
    backup = pathlib.Path(output) / "backup"
    try:
        name = (backup / "latest").read_text().strip()
        state = json.loads((backup / name / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state["step"], state["run"]["steps_per_epoch"]


def _kill_after_mid_epoch_checkpoint(processes, output, timeout=600):
    """SIGKILLs `processes[-1]` as soon as a checkpoint in the middle of an epoch
    (after the first epoch) exists; returns that checkpoint's step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _checkpoint(output)
        if state is not None:
            step, per_epoch = state
            if step > per_epoch and step % per_epoch:
                processes[-1].send_signal(signal.SIGKILL)
                return step
        for process in processes:
            if process.poll() is not None:
                raise AssertionError("the run ended before a mid-epoch checkpoint:\n"
                                     + process.stderr.read()[-3000:])
        time.sleep(0.02)
    raise AssertionError("no mid-epoch checkpoint in time")


def _weights(path):
    return keras.saving.load_model(path, compile=False).get_weights()


def _max_difference(a, b):
    assert len(a) == len(b)
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def _assert_resumed_to_the_reference_weights(reference_dir, killed_dir, step, resumed):
    """The resumed run's model equals the uninterrupted one's (<= 1e-6), and the
    checkpoint directory was removed once the run completed."""
    difference = _max_difference(_weights(reference_dir / "model.keras"),
                                 _weights(killed_dir / "model.keras"))
    print(f"killed after the checkpoint of step {step}, resumed at "
          f"{resumed['resumed_at_step']} of {resumed['steps']}: max |difference| "
          f"{difference:.3g}")
    assert difference <= 1e-6, difference
    assert not (killed_dir / "backup").exists()


def _tf_configs(count=2):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            for index in range(count)]


# --------------------------------------------------------------------------- data


def test_task_stream_resumes_batch_for_batch_and_covers_every_example(sst2_rows, vocab):
    from keras_albert.tokenizers import Preprocessor, WordPieceTokenizer
    from keras_albert.training.resumable_streams import task_stream
    from keras_albert.training.task_dataset import encode_texts
    from keras_albert.training.task_files import load_task_file

    data = load_task_file(str(sst2_rows))
    preprocessor = Preprocessor(WordPieceTokenizer(str(vocab)), seq_length=32)
    per_epoch = task_stream(data, preprocessor, 16, seed=5).steps_per_epoch
    total = 3 * per_epoch

    def rows(stream):
        out = []
        for x, y in stream:
            ids, mask = x["input_word_ids"].numpy(), x["input_mask"].numpy()
            out.append([(tuple(r[m > 0]), int(label)) for r, m, label in
                        zip(ids, mask, y.numpy())])
        return out

    full = rows(task_stream(data, preprocessor, 16, seed=5, end_step=total))
    assert len(full) == total
    for start in (per_epoch + 5, 2 * per_epoch):
        assert rows(task_stream(data, preprocessor, 16, seed=5, start_step=start,
                                end_step=total)) == full[start:]
    # Every epoch holds every example exactly once (as (tokens, label) multisets).
    encoded = encode_texts(data, preprocessor)
    examples = sorted(
        (tuple(encoded.word_ids[encoded.row_splits[i]:encoded.row_splits[i + 1]]),
         int(data.labels[i])) for i in range(len(data)))
    orders = []
    for epoch in range(3):
        seen = [row for batch in full[epoch * per_epoch:(epoch + 1) * per_epoch]
                for row in batch]
        assert sorted(seen) == examples
        orders.append(seen)
    assert orders[0] != orders[1] != orders[2]  # reshuffled every epoch


# --------------------------------------------------------------------------- one process


def test_finetune_killed_mid_epoch_resumes_to_the_same_weights(sst2_rows, vocab, tmp_path):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference = _start(_finetune_args(sst2_rows, vocab, reference_dir))
    killed = _start(_finetune_args(sst2_rows, vocab, killed_dir))
    step = _kill_after_mid_epoch_checkpoint([killed], killed_dir)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert not (killed_dir / "model.keras").exists()
    summary = _finish(reference)
    assert summary["resumed_at_step"] == 0

    resumed = _finish(_start(_finetune_args(sst2_rows, vocab, killed_dir, "--resume")))
    # The checkpoint read at restart is the one seen when the process was killed, or a
    # later one written before the signal landed.
    assert resumed["resumed_at_step"] >= step
    assert resumed["resumed_at_step"] % (summary["steps"] // 3)  # mid-epoch
    assert resumed["steps"] == summary["steps"]
    _assert_resumed_to_the_reference_weights(reference_dir, killed_dir, step, resumed)


def test_resume_without_a_checkpoint_fails_clearly(sst2_rows, vocab, tmp_path):
    # --resume without a checkpoint: a clear error, exit code 2.
    done = subprocess.run([sys.executable, "-m", "keras_albert.cli",
                           *_finetune_args(sst2_rows, vocab, tmp_path / "none", "--resume")],
                          env=subprocess_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "no checkpoint" in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------- in process


def _interrupt_at(step):
    class Interrupt(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps = 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.steps == step:
                raise KeyboardInterrupt(f"interrupted after {step} steps")

    return Interrupt()


def _tiny_classifier_run(data, preprocessor, output, **kwargs):
    from keras_albert import Encoder
    from keras_albert.optimizers import create_optimizer
    from keras_albert.models.task_kinds import task_model
    from keras_albert.training.finetune import finetune

    keras.utils.set_random_seed(1)
    encoder = Encoder.from_preset("bert_tiny", vocabulary_size=preprocessor.tokenizer
                                  .vocabulary_size, seed=1)
    model = task_model(encoder, "classification", 2)
    summary = finetune(model, preprocessor, data, str(output),
                       lambda n: create_optimizer("adamw", 2e-3, total_steps=n, warmup_steps=3),
                       epochs=2, batch_size=16, seed=2, checkpoint_every=5, verbose=0,
                       **kwargs)
    return model.get_weights(), summary


def test_a_wrong_data_position_is_visible(sst2_rows, vocab, tmp_path, monkeypatch):
    """Resuming one batch off (or at the start of the epoch, as Keras's own
    BackupAndRestore does) ends far from the uninterrupted weights: the 1e-6 equality
    above can only hold when the resumed run saw the same batches."""
    from keras_albert.tokenizers import Preprocessor, WordPieceTokenizer
    from keras_albert.training import resumable_streams, resume
    from keras_albert.training.task_files import load_task_file

    data = load_task_file(str(sst2_rows)).subset(np.arange(160))
    preprocessor = Preprocessor(WordPieceTokenizer(str(vocab)), seq_length=32)
    reference, _ = _tiny_classifier_run(data, preprocessor, tmp_path / "reference")
    with pytest.raises(KeyboardInterrupt):
        _tiny_classifier_run(data, preprocessor, tmp_path / "run",
                             extra_callbacks=[_interrupt_at(17)])
    state = resume.read_checkpoint(str(tmp_path / "run" / "backup"))
    assert state["step"] == 15 and state["step"] % state["run"]["steps_per_epoch"]

    import shutil

    import keras_albert.training.finetune as finetune_module

    backup = tmp_path / "run" / "backup"
    shutil.copytree(backup, tmp_path / "backup-copy")
    original = resumable_streams.task_stream
    wrong_positions = {
        "one batch late": lambda step: step + 1,
        "the epoch restarted (Keras's BackupAndRestore)": lambda step: step - step % 12,
    }
    for name, position in wrong_positions.items():
        shutil.rmtree(backup, ignore_errors=True)
        shutil.copytree(tmp_path / "backup-copy", backup)
        monkeypatch.setattr(finetune_module, "task_stream", lambda *a, start_step=0, **k:
                            original(*a, start_step=position(start_step) if start_step
                                     else 0, **k))
        wrong, summary = _tiny_classifier_run(data, preprocessor, tmp_path / "run",
                                              resume="require")
        assert summary["resumed_at_step"] == 15
        difference = _max_difference(reference, wrong)
        print(f"resumed with the data position {name}: max |difference| {difference:.3g}")
        assert difference > 1e-4


def test_pretrain_command_with_adafactor_resumes_exactly(data_dir, vocab, tmp_path):
    """`keras-albert pretrain`: AdaFactor's factored slots, the step and dropout's RNG
    state come back, and the streaming MLM + SOP data (whose order depends on every
    iterator opened on a dataset object) is replayed from the checkpoint's step."""
    import gzip

    corpus = tmp_path / "corpus.txt"
    with gzip.open(data_dir / "corpus" / "python311_docs.txt.gz", "rt", encoding="utf-8") as f:
        corpus.write_text("".join(next(f) for _ in range(3000)), encoding="utf-8")

    def args(output, *extra):
        return ["pretrain", "--corpus", str(corpus), "--vocab", str(vocab), "--preset",
                "bert_tiny", "--steps", "40", "--steps-per-epoch", "10", "--batch", "8",
                "--seq", "32", "--optimizer", "adafactor", "--learning-rate", "1e-2",
                "--checkpoint-every", "3", "--eval-steps", "2", "--output", str(output),
                "--quiet", *extra]

    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference = _start(args(reference_dir))
    killed = _start(args(killed_dir))
    step = _kill_after_mid_epoch_checkpoint([killed], killed_dir)
    killed.wait(timeout=60)
    _finish(reference)
    resumed = _finish(_start(args(killed_dir, "--resume")))
    assert resumed["resumed_at_step"] >= step and resumed["resumed_at_step"] % 10
    difference = _max_difference(_weights(reference_dir / "model.keras"),
                                 _weights(killed_dir / "model.keras"))
    print(f"pretrain: killed after the checkpoint of step {step}, resumed at "
          f"{resumed['resumed_at_step']} of 40: max |difference| {difference:.3g}")
    assert difference <= 1e-6, difference


# --------------------------------------------------------------------------- two workers


def test_two_worker_run_with_a_killed_worker_resumes_to_the_same_weights(
        sst2_rows, vocab, tmp_path):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    args = ["--strategy", "multi_worker"]
    reference = [_start(_finetune_args(sst2_rows, vocab, reference_dir, *args, epochs=2),
                        TF_CONFIG=c) for c in _tf_configs()]
    workers = [_start(_finetune_args(sst2_rows, vocab, killed_dir, *args, epochs=2),
                      TF_CONFIG=c) for c in _tf_configs()]
    step = _kill_after_mid_epoch_checkpoint(workers, killed_dir)  # kills worker 1
    workers[1].wait(timeout=60)
    assert workers[1].returncode == -signal.SIGKILL
    # The job restarts: the surviving worker (stuck or failing in its next collective)
    # is stopped too, as a cluster scheduler would.
    try:
        workers[0].wait(timeout=10)
        print(f"worker 0 exited by itself ({workers[0].returncode})")
    except subprocess.TimeoutExpired:
        print("worker 0 still waiting on its collective after 10 s: killed")
        workers[0].kill()
        workers[0].wait()
    summaries = [_finish(process) for process in reference]
    assert not (killed_dir / "model.keras").exists()

    restarted = [_start(_finetune_args(sst2_rows, vocab, killed_dir, "--resume", *args,
                                       epochs=2), TF_CONFIG=c) for c in _tf_configs()]
    resumed = [_finish(process) for process in restarted]
    assert all(summary["replicas"] == 2 for summary in summaries + resumed)
    assert resumed[0]["resumed_at_step"] == resumed[1]["resumed_at_step"] >= step
    _assert_resumed_to_the_reference_weights(reference_dir, killed_dir, step, resumed[0])


def test_standard_callbacks_keep_keras_backup_and_restore_semantics(tmp_path):
    """In a plain `fit`, `standard_callbacks(resume=True)` restores weights and the
    optimizer and restarts the interrupted epoch, as Keras's BackupAndRestore does."""
    from keras_albert.training.callbacks import standard_callbacks

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")

    def model():
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        net.compile(keras.optimizers.Adam(0.1), "mse")
        return net

    reference = model()
    reference.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    interrupted = model()
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                        callbacks=standard_callbacks(str(tmp_path), tensorboard=False)
                        + [_interrupt_at(10)])
    assert (tmp_path / "backup" / "latest").exists()
    resumed = model()
    history = resumed.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                          callbacks=standard_callbacks(str(tmp_path), tensorboard=False))
    assert len(history.history["loss"]) == 1  # epochs 0 and 1 were done: only epoch 2
    assert int(resumed.optimizer.iterations) == 12
    difference = _max_difference(reference.get_weights(), resumed.get_weights())
    print(f"plain fit resumed at the start of epoch 2 of 3: max |difference| {difference:.3g}")
    assert difference <= 1e-6
    assert not (tmp_path / "backup").exists()
