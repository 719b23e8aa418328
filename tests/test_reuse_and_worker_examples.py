"""The reuse and multi-worker examples run, in their reduced (CI) modes.

- `examples/hub_reuse.py --reduced`: a bert_tiny with the real WordPiece vocabulary is
  exported TF-Hub style, then fine-tuned on SST-2 rows inside a Keras 3 model
  (`HubEncoderLayer`) and inside a tf_keras model (`hub.KerasLayer`, in a child
  process); in both, every encoder weight must change and the loss on the training
  rows must fall.
- `REDUCED=1 examples/multi_worker.sh`: two `keras-albert finetune --strategy
  multi_worker` workers on 127.0.0.1 both exit 0 and the chief writes `model.keras`
  and a `summary.json` with 2 replicas. When one worker fails, the script stops the
  others (which would wait forever in their next collective) and exits non-zero
  (shown with a stand-in worker command, no TensorFlow needed).

The two real runs start together (module fixture) so the file's wall time is the
slowest run's, not the sum.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMEOUT = 600


def _env(data_dir, **extra):
    env = dict(os.environ, KERAS_ALBERT_DATA=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2",
               KERAS_BACKEND="tensorflow", PYTHON=sys.executable,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for key in ("TF_CONFIG", "TF_USE_LEGACY_KERAS", "N", "HOSTS", "LOG_DIR", "KERAS_ALBERT"):
        env.pop(key, None)
    env.update(extra)
    return env


def _start(command, env):
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process):
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    lines = stdout.strip().splitlines()
    last = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return process.returncode, last, stdout, stderr


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("examples")
    env = _env(data_dir)
    worker_env = _env(data_dir, REDUCED="1", N="2")
    processes = {
        "hub_reuse": _start([sys.executable, str(EXAMPLES / "hub_reuse.py"), "--reduced",
                             "--export-dir", str(root / "hub")], env),
        "workers": _start([str(EXAMPLES / "multi_worker.sh"), "--output",
                           str(root / "run")], worker_env),
    }
    return root, {name: _finish(process) for name, process in processes.items()}


@pytest.mark.parametrize("framework", ["keras3", "tf_keras"])
def test_hub_reuse_fine_tunes_the_exported_encoder(runs, framework):
    root, results = runs
    code, summary, stdout, stderr = results["hub_reuse"]
    assert code == 0, stderr[-4000:]
    assert summary["model"] == "bert_tiny"
    assert summary["encoder_dir"] == str(root / "hub" / "encoder")
    assert (root / "hub" / "preprocessor" / "saved_model.pb").is_file()
    result = summary[framework]
    assert "error" not in result, result
    # The fine-tuning updated the SavedModel's own variables, all of them.
    assert result["encoder_weights"] > 10
    assert result["encoder_weights_changed"] == result["encoder_weights"]
    assert result["weights_changed"] is True
    assert result["max_encoder_weight_change"] > 1e-4
    # Measured on the same training rows with dropout off, before and after.
    assert result["train_loss_after"] < 0.95 * result["train_loss_before"], result
    assert result["loss_fell"] is True
    assert 0.0 <= result["eval_accuracy_after"] <= 1.0
    assert len(result["fit_loss_per_chunk"]) > 1
    expected_optimizer = {"keras3": "keras.optimizers.Adam", "tf_keras": "tf_keras."}
    assert result["optimizer"].startswith(expected_optimizer[framework])
    assert result["optimizer"].endswith("Adam")
    assert f"{framework} (" in stdout  # the human-readable line
    if framework == "tf_keras":
        assert result["keras_albert_loaded"] is False  # the SavedModels suffice


def test_two_workers_finish_and_only_the_chief_writes(runs):
    root, results = runs
    code, summary, stdout, stderr = results["workers"]
    output = root / "run"
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    assert summary == {"ok": True, "workers": 2, "exit_codes": [0, 0],
                       "output": str(output), "logs": f"{output}.logs"}
    for index in (0, 1):
        assert (root / "run.logs" / f"worker{index}.log").is_file()
    assert (output / "model.keras").is_file()
    written = json.loads((output / "summary.json").read_text())
    assert written["replicas"] == 2
    assert written["train_examples"] == 64 and written["epochs"] == 1
    assert written["seq_length"] == 32
    # The chief's own summary line was echoed.
    assert '"replicas": 2' in stdout


# Stands in for `keras-albert`: worker 1 fails once worker 0 is up; worker 0 blocks as a real
# worker does in its next collective when a peer is gone.
_FAKE_WORKER = """
import json, os, pathlib, sys, time
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
ready = pathlib.Path(os.environ["FAKE_WORKER_READY"])
if index == 0:
    print("args", sys.argv[1:], flush=True)
    ready.touch()
    time.sleep(600)
deadline = time.monotonic() + 60
while not ready.exists() and time.monotonic() < deadline:  # worker 0 is up
    time.sleep(0.05)
print("worker 1: bad input", file=sys.stderr)
sys.exit(3)
"""


def test_a_failing_worker_stops_the_others_and_fails_the_script(data_dir, tmp_path):
    fake = tmp_path / "fake_worker.py"
    fake.write_text(_FAKE_WORKER)
    env = _env(data_dir, N="2", KERAS_ALBERT=f"{sys.executable} {fake}",
               FAKE_WORKER_READY=str(tmp_path / "worker0_ready"))
    done = subprocess.run([str(EXAMPLES / "multi_worker.sh"), "--output", str(tmp_path / "run"),
                           "--epochs", "1"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    # Worker 1's own exit code; worker 0 stopped by the script (SIGTERM: 128 + 15).
    assert summary["ok"] is False and summary["exit_codes"] == [143, 3], summary
    assert "worker 1 failed (exit 3)" in done.stderr
    assert "worker 1: bad input" in done.stderr  # the end of its log is shown
    log = (tmp_path / "run.logs" / "worker0.log").read_text()
    assert "finetune', '--strategy', 'multi_worker', '--output'" in log
    pids = [int(line.split("pid ")[1].split(",")[0]) for line in done.stdout.splitlines()
            if line.startswith("worker ") and ": pid " in line]
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_multi_worker_prints_the_commands_for_several_machines(data_dir, tmp_path):
    done = subprocess.run(
        [str(EXAMPLES / "multi_worker.sh"), "--model", "run/", "--output", "/shared/run"],
        cwd=ROOT, env=_env(data_dir, HOSTS="host1:12345 host2:12345 host3:2222"),
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    configs = [json.loads(line.split("'")[1]) for line in done.stdout.splitlines()
               if line.startswith("TF_CONFIG=")]
    assert [config["task"] for config in configs] == [
        {"type": "worker", "index": index} for index in range(3)]
    assert all(config["cluster"] == {"worker": ["host1:12345", "host2:12345", "host3:2222"]}
               for config in configs)
    assert done.stdout.count("finetune --strategy multi_worker --model run/ --output "
                             "/shared/run") == 3
    assert not list(tmp_path.iterdir())  # nothing was started


def test_hub_reuse_refuses_half_an_export(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLES / "hub_reuse.py"), "--encoder-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--encoder-dir and --preprocessor-dir go together" in done.stderr
