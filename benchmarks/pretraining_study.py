"""Pretraining study: attention key size and the three GELU forms, same data, steps, seeds.

Every arm is a small ALBERT (E 64, H 256, 8 heads: head size 32, 4 layers sharing one
set of weights) pretrained from scratch with masked-LM + sentence-order prediction on
the Python 3.11 documentation corpus (../shared/data/corpus) at sequence length 128,
by `keras-albert pretrain` in a fresh process. Arms differ in one setting only:

- `key32` (the default: key size = H / heads = 32, tanh GELU as ALBERT),
  `key64`, `key128`: the query/key size per head (Bhojanapalli et al. 2020; Su
  Jianlin's post on attention's low-rank bottleneck: head size 32 < sequence 128);
- `gelu_exact`, `gelu_sigmoid`: the activation, against `key32`'s tanh form.

Seeds run in the outer loop and arms in the inner one, so every arm's runs are spread
over the session alike. One SentencePiece vocabulary (trained by the first run) serves
every run. A finished run (its summary.json exists) is not run again, so the study can
be continued. Step times come from a separate timing phase (`time_arms`), interleaved
and in fresh processes, not from the training runs. Writes OUTPUT/study.json, a Markdown table on stdout and a PNG of the
held-out curves:

    python benchmarks/pretraining_study.py --output /tmp/pretraining_study \\
        --png docs/pretraining_study.png
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

BASE = ("hidden_dim=256", "num_heads=8", "num_layers=4", "intermediate_dim=1024",
        "embedding_dim=64", "max_sequence_length=128", "dropout=0.0")
ARMS = {
    "key32": (),
    "key64": ("key_size=64",),
    "key128": ("key_size=128",),
    "gelu_exact": ("activation=gelu",),
    "gelu_sigmoid": ("activation=gelu_sigmoid",),
}


def _corpus(data_dir):
    return str(pathlib.Path(data_dir) / "corpus" / "python311_docs.txt.gz")


def run_arm(arm, seed, args, vocab):
    """Runs one arm in a fresh process; returns its summary."""
    output = pathlib.Path(args.output) / f"{arm}_seed{seed}"
    summary_path = output / "summary.json"
    if not summary_path.exists():
        command = [sys.executable, "-m", "keras_albert.cli", "pretrain",
                   "--corpus", _corpus(args.data), "--preset", "albert_base",
                   "--seq", str(args.seq), "--batch", str(args.batch),
                   "--steps", str(args.steps), "--steps-per-epoch", str(args.steps_per_epoch),
                   "--eval-steps", str(args.eval_steps), "--seed", str(seed),
                   "--optimizer", "adafactor", "--weight-decay", "0", "--remat", "none",
                   "--precision", "float32", "--quiet", "--overwrite", "--output", str(output)]
        command += ["--vocab", vocab] if vocab else ["--vocab-size", str(args.vocab_size)]
        for setting in BASE + ARMS[arm]:
            command += ["--set", setting]
        print(f"# {arm} seed {seed}", file=sys.stderr, flush=True)
        subprocess.run(command, check=True)
    return json.loads(summary_path.read_text())


def time_arms(args, rounds):
    """Median training-step seconds of each arm: `rounds` interleaved rounds, each arm
    in a fresh process (`keras-albert bench train`'s measurement: the same model,
    batch, length, masked positions and AdaFactor, on random ids, 20 timed steps after
    3 untimed ones), so that no arm is timed while the machine does something else."""
    from keras_albert.cli.options import parse_override
    from keras_albert.training.benchmark import run_isolated

    seconds = {arm: [] for arm in args.arms}
    for _ in range(rounds):
        for arm in args.arms:
            overrides = dict(parse_override(setting) for setting in BASE + ARMS[arm])
            result = run_isolated({
                "preset": "albert_base", "overrides": {**overrides,
                                                       "vocabulary_size": args.vocab_size},
                "batch": args.batch, "seq": args.seq, "remat": "none",
                "precision": "float32", "optimizer": "adafactor", "steps": 20, "warmup": 3,
                "xla": False, "accumulation": None})
            if "error" in result:
                raise RuntimeError(f"timing {arm}: {result['error']}")
            seconds[arm].append(result["step_time_s"])
    return {arm: statistics.median(values) for arm, values in seconds.items()}


def _mean_spread(values):
    mean = statistics.fmean(values)
    return mean, (max(values) - min(values)) / 2 if len(values) > 1 else 0.0


def table(results, step_seconds):
    rows = ["| arm | parameters | held-out MLM acc. | held-out SOP acc. | held-out MLM loss "
            "| ms/step | runs |", "|---|---|---|---|---|---|---|"]
    # Step times relative to the default arm when it ran, else to the first one.
    baseline = step_seconds.get("key32") or next(iter(step_seconds.values()))
    for arm, runs in results.items():
        mlm = _mean_spread([run["after"]["mlm_logits_accuracy"] for run in runs])
        sop = _mean_spread([run["after"]["sop_logits_accuracy"] for run in runs])
        loss = _mean_spread([run["after"]["mlm_logits_loss"] for run in runs])
        step_ms = 1000 * step_seconds[arm]
        rows.append(
            f"| {arm} | {runs[0]['params']:,} | {mlm[0]:.4f} ± {mlm[1]:.4f} "
            f"| {sop[0]:.4f} ± {sop[1]:.4f} | {loss[0]:.3f} ± {loss[1]:.3f} "
            f"| {step_ms:.0f} ({step_seconds[arm] / baseline:.2f}x) | {len(runs)} |")
    return "\n".join(rows)


def plot(results, png_path, steps_per_epoch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for arm, runs in results.items():
        for key, axis in zip(("val_mlm_logits_accuracy", "val_sop_logits_accuracy",
                              "val_mlm_logits_loss"), axes):
            curves = [run["history"][key] for run in runs]
            mean = [statistics.fmean(values) for values in zip(*curves)]
            steps = [steps_per_epoch * (i + 1) for i in range(len(mean))]
            line, = axis.plot(steps, mean, marker=".", label=arm)
            for curve in curves:  # each seed, faint
                axis.plot(steps, curve, color=line.get_color(), alpha=0.25, linewidth=0.8)
    for axis, title in zip(axes, ("held-out masked-LM accuracy", "held-out sentence-order "
                                  "accuracy", "held-out masked-LM loss")):
        axis.set_title(title)
        axis.set_xlabel("training step")
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle("Small ALBERT (H 256, 8 heads, 4 shared layers, seq 128): key size and "
                    "GELU form; mean over seeds (faint: each seed)")
    figure.tight_layout()
    figure.savefig(png_path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("KERAS_ALBERT_DATA",
                                                         "../shared/data"))
    parser.add_argument("--output", default="/tmp/pretraining_study")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--eval-steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--timing-rounds", type=int, default=3,
                        help="interleaved rounds of step timing, each arm in a fresh process")
    parser.add_argument("--png", help="where to write the curves (PNG)")
    args = parser.parse_args(argv)

    vocab = None
    results = {arm: [] for arm in args.arms}
    for seed in args.seeds:
        for arm in args.arms:
            results[arm].append(run_arm(arm, seed, args, vocab))
            if vocab is None:  # the first run trained it; every later run reuses it
                vocab = str(next((pathlib.Path(args.output) / f"{arm}_seed{seed}").glob(
                    "*.model")))
    step_seconds = time_arms(args, args.timing_rounds)
    (pathlib.Path(args.output) / "study.json").write_text(
        json.dumps({"runs": results, "step_seconds": step_seconds}, indent=1))
    print(table(results, step_seconds))
    if args.png:
        plot(results, args.png, args.steps_per_epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
