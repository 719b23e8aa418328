"""examples/imdb_sentiment.py: its CI mode fine-tunes the real MiniLM on IMDB reviews,
evaluates on reviews it did not train on, and refuses a bad --data quickly."""

import gzip
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "examples" / "imdb_sentiment.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("imdb_sentiment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(args, data_dir, timeout=300):
    env = {**os.environ, "KERAS_ALBERT_DATA": str(data_dir)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def reduced_run(data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("imdb")
    started = time.perf_counter()
    result = _run(["--reduced", "--quiet", "--data", str(data_dir / "imdb" / "train.tsv.gz"),
                   "--output", str(output)], data_dir)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return summary, output, seconds


def test_reduced_mode_fine_tunes_and_reports_held_out_accuracy(reduced_run):
    summary, output, _ = reduced_run
    example = _load_example()
    assert summary["train_examples"] == example.REDUCED["train_rows"]
    assert summary["examples"] == example.REDUCED["held_out"]
    assert summary["seq"] == example.REDUCED["seq"]
    assert summary["pooling"] == "mean"  # the default model is a sentence-transformers one
    for metric in ("accuracy", "f1"):
        assert 0.0 <= summary[metric] <= 1.0
    assert -1.0 <= summary["mcc"] <= 1.0
    assert summary["seconds"] >= summary["train_seconds"] > 0
    # It learns: the second pass over the same reviews has a lower mean loss.
    first, last = summary["loss"][0], summary["loss"][-1]
    assert len(summary["loss"]) == example.REDUCED["epochs"]
    assert last < first, summary["loss"]
    # The library's pipeline wrote the model, TensorBoard logs and the summary.
    assert (output / "model.keras").is_file()
    assert any((output / "logs").rglob("events.out.tfevents.*"))
    written = json.loads((output / "summary.json").read_text())
    assert written["held_out"]["accuracy"] == summary["accuracy"]


def test_held_out_reviews_are_not_trained_on(reduced_run, data_dir):
    _, output, _ = reduced_run
    rows = json.loads((output / "rows.json").read_text())
    train, held_out = set(rows["train"]), set(rows["held_out"])
    assert len(train) == len(rows["train"]) and len(held_out) == len(rows["held_out"])
    assert not train & held_out
    # A random sample, not the head of the label-sorted file: both classes in each part.
    with gzip.open(data_dir / "imdb" / "train.tsv.gz", "rt", encoding="utf-8") as handle:
        labels = [line.split("\t", 1)[0] for line in handle][1:]
    for part in (train, held_out):
        assert {labels[row] for row in part} == {"0", "1"}


def test_split_rows_is_seeded_disjoint_and_capped():
    example = _load_example()
    train, held_out = example.split_rows(1000, 0.2, seed=3)
    assert len(held_out) == 200 and len(train) == 800
    assert not set(train) & set(held_out)
    assert sorted(set(train) | set(held_out)) == list(range(1000))
    again_train, again_held_out = example.split_rows(1000, 0.2, seed=3)
    assert np.array_equal(held_out, again_held_out) and np.array_equal(train, again_train)
    assert not np.array_equal(held_out, example.split_rows(1000, 0.2, seed=4)[1])
    # A count, and a training cap that does not change which rows are held out.
    capped, counted = example.split_rows(1000, 200, train_rows=50, seed=3)
    assert np.array_equal(counted, held_out)
    assert len(capped) == 50 and set(capped) <= set(train)
    with pytest.raises(ValueError, match="empty part"):
        example.split_rows(100, 100)


def test_line_breaks_are_removed_from_reviews():
    example = _load_example()
    text = "Great film.<br /><br />See it.<br/>Twice.<BR>"
    assert example.clean_review(text) == "Great film. See it. Twice."


def test_a_missing_data_file_fails_fast_with_a_clear_message(tmp_path, data_dir):
    missing = tmp_path / "no_such_reviews.tsv"
    started = time.perf_counter()
    result = _run(["--reduced", "--data", str(missing), "--output", str(tmp_path / "out")],
                  data_dir, timeout=60)
    assert result.returncode != 0
    assert f"--data {missing}: no such file" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.perf_counter() - started < 30  # refused before TensorFlow loads
    assert not (tmp_path / "out").exists()
