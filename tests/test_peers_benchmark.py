"""benchmarks/peers_train_step.py: the `matmul_floor` network and the table.

The floor bounds what any TensorFlow implementation of the step can reach, so it must
do the model's matrix multiplications: as many distinct weight matrices as the encoder
has (with the same sharing), each of them trained. Checked against our `Encoder`'s own
weights for ALBERT (grouped sharing), BERT (no sharing) and attention-only sharing. The
end-to-end run checks the interleaved rounds and the bound sentence. No timing
assertions.
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peers_train_step import matmul_floor_step  # noqa: E402
from keras_albert.models.encoder import Encoder  # noqa: E402
from keras_albert.presets import preset_config  # noqa: E402


def _encoder_matrices(config):
    """Sizes of the encoder's projection matrices (not embedding tables, not the pooler)."""
    encoder = Encoder(**config)
    return sorted(int(np.prod(w.shape)) for w in encoder.weights
                  if w.path.endswith("kernel") and not w.path.startswith("pooler"))


@pytest.mark.parametrize("preset, overrides", [
    ("albert_tiny", {}),                        # 2 groups x 2 inner blocks, E != H
    ("bert_tiny", {}),                          # no sharing, E == H
    ("albert_tiny", {"sharing": "attention"}),  # shared attention, per-layer FFN
])
def test_floor_has_the_encoders_matrices_and_trains_all_of_them(preset, overrides):
    config = {**preset_config(preset), **overrides}
    step, variables = matmul_floor_step(config, batch=2, seq=16)
    assert sorted(int(np.prod(v.shape)) for v in variables) == _encoder_matrices(config)
    before = [v.numpy().copy() for v in variables]
    loss = float(step())
    assert np.isfinite(loss)
    changed = [not np.array_equal(old, v.numpy()) for old, v in zip(before, variables)]
    assert all(changed), f"{changed.count(False)} floor weights got no update"


def test_table_has_interleaved_rounds_and_the_bound():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers_train_step.py"), "--preset",
         "albert_tiny", "--batch", "2", "--seq", "16", "--steps", "1", "--warmup", "1",
         "--repeats", "2", "--systems", "keras_hub_xla,matmul_floor"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|") for line in done.stdout.splitlines()
            if line.startswith("| keras_hub_xla") or line.startswith("| matmul_floor")]
    assert [row[1].strip() for row in rows] == ["keras_hub_xla", "matmul_floor"]
    for row in rows:
        assert len(row[6].split(",")) == 2, row  # one time per round
    assert rows[0][5].strip() == "1.00x"  # the only peer is the fastest one
    assert "1.1x the fastest peer needs" in done.stdout
    assert "no TensorFlow implementation can be more than" in done.stdout
