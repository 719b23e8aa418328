"""Plots masked-LM and sentence-order accuracy (and loss) per epoch of a pretraining run.

Reads `OUTPUT/summary.json` written by `keras-albert pretrain` (its `history`) and
writes a PNG:

    python benchmarks/plot_pretraining.py run/summary.json docs/pretraining_curves.png
"""

import json
import sys


def plot(summary_path, png_path, steps_per_epoch=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(summary_path, encoding="utf-8") as handle:
        summary = json.load(handle)
    history = summary["history"]
    epochs = len(history["loss"])
    steps_per_epoch = steps_per_epoch or summary["steps"] // epochs
    steps = [steps_per_epoch * (i + 1) for i in range(epochs)]
    figure, (accuracy, loss) = plt.subplots(1, 2, figsize=(10, 4))
    accuracy.plot(steps, history["mlm_logits_accuracy"], marker="o", label="masked-LM")
    accuracy.plot(steps, history["sop_logits_accuracy"], marker="o", label="sentence order")
    accuracy.axhline(0.5, color="gray", linestyle=":", label="SOP chance")
    accuracy.set_xlabel("training step")
    accuracy.set_ylabel("training accuracy (epoch mean)")
    accuracy.set_ylim(0, 1)
    accuracy.legend()
    loss.plot(steps, history["mlm_logits_loss"], marker="o", label="masked-LM")
    loss.plot(steps, history["sop_logits_loss"], marker="o", label="sentence order")
    loss.set_xlabel("training step")
    loss.set_ylabel("loss (epoch mean)")
    loss.legend()
    after = summary.get("after", {})
    figure.suptitle(
        f"Pretraining from scratch: {summary['params']:,} parameters; held-out MLM "
        f"{after.get('mlm_logits_accuracy', float('nan')):.3f}, SOP "
        f"{after.get('sop_logits_accuracy', float('nan')):.3f}"
    )
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    return png_path


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(plot(sys.argv[1], sys.argv[2]))
