"""benchmarks/memory_guide.py in a reduced mode: a tiny preset, two configurations
(the baseline and all options together), one or two timed steps each; every
configuration still runs in its own fresh process, as in the real measurement.

Asserts the table, the JSON and (with matplotlib, the `bench` extra) the plot are
written, and the relations that must hold whatever the machine: Adam keeps two
float32 slots per parameter; gradient accumulation adds one float32 buffer per
parameter; AdaFactor keeps no first moment and at most one second moment (so at most
half of Adam's; far less only for matrices large enough to factor, which a tiny model
has none of). No timing assertions.
"""

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import memory_guide  # noqa: E402

CONFIGS = ("baseline", "all")
MIB = 2**20


@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("memory_guide")
    paths = {"md": out / "memory.md", "png": out / "memory_guide.png",
             "json": out / "results.json"}
    code = memory_guide.main([
        "--presets", "bert_tiny", "--configs", ",".join(CONFIGS), "--batch", "4",
        "--seq", "16", "--accumulation", "2", "--steps", "1", "--warmup", "1",
        "--png", str(paths["png"]), "--markdown", str(paths["md"]),
        "--json", str(paths["json"]),
    ])
    return code, paths


def test_reduced_run_writes_one_row_per_configuration(reduced_run):
    code, paths = reduced_run
    results = json.loads(paths["json"].read_text())
    assert code == 0, [r.get("error") for r in results]
    assert [r["name"] for r in results] == list(CONFIGS)
    text = paths["md"].read_text()
    assert text.startswith("## Measurements")
    rows = [line for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| configuration")]
    assert [row.split("|")[1].strip() for row in rows] == list(CONFIGS)
    # The exact bench command of each row is listed.
    assert text.count("keras-albert bench train --preset bert_tiny") == len(CONFIGS)
    assert ("--remat full --precision mixed_bfloat16 --optimizer adafactor "
            "--accumulation 2") in text


def test_plot_is_written(reduced_run):
    # matplotlib is in the tests extra, so this never skips in CI.
    _, paths = reduced_run
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![peak memory per option](memory_guide.png)" in paths["md"].read_text()


def test_counted_optimizer_state_relations(reduced_run):
    _, paths = reduced_run
    rows = {r["name"]: r for r in json.loads(paths["json"].read_text())}
    params = rows["baseline"]["params"]
    assert all(r["params"] == params for r in rows.values())
    adam = rows["baseline"]["optimizer_state_mb"]
    # Adam: two float32 slots (m, v) per parameter (the bench rounds to 0.01 MiB).
    assert adam == pytest.approx(8 * params / MIB, abs=0.01)
    # All options: AdaFactor's state plus one float32 gradient-accumulation buffer per
    # parameter (mixed bfloat16 keeps float32 variables, so float32 buffers).
    adafactor = rows["all"]["optimizer_state_mb"] - 4 * params / MIB
    assert 0 < adafactor <= adam / 2 + 0.01
    # Same effective batch: 2 micro-batches of 2 against one batch of 4.
    assert rows["all"]["batch"] == 2 and rows["all"]["accumulation"] == 2
    assert rows["all"]["effective_batch"] == rows["baseline"]["effective_batch"] == 4
    assert rows["all"]["precision"] == "mixed_bfloat16" and rows["all"]["remat"] == "full"
    for row in rows.values():
        assert row["peak_tensor_mb"] > 0 and row["step_time_s"] > 0
    assert rows["baseline"]["memory_ratio"] == 1.0
