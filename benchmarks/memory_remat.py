"""Peak training memory against batch size, with and without recompute and AdaFactor.

Runs `keras-albert bench train` configurations (each in a fresh process) for a preset
and sequence length over several batch sizes, then:
- plots peak tensor memory (TensorFlow's BFC allocator) against batch size for
  remat none / selective / full (docs/memory_<preset>_seq<seq>.png); the modes of
  one batch size run one after the other, so their time ratios share conditions;
- finds the largest batch that fits a memory budget for "no remat + Adam" and
  "remat full + AdaFactor";
- with --write, records the table in docs/benchmarks.md.

    python benchmarks/memory_remat.py --preset albert_base --seq 256 --batches 8,16,32 \\
        --budget-mb 4096 --write
"""

import argparse
import datetime
import os
import pathlib
import platform
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peers_train_step import replace_section  # noqa: E402
from keras_albert.training.benchmark import run_isolated  # noqa: E402


def measure(preset, batch, seq, remat, optimizer, steps, precision="float32"):
    config = {"preset": preset, "batch": batch, "seq": seq, "remat": remat,
              "precision": precision, "optimizer": optimizer, "steps": steps, "warmup": 1,
              "xla": False, "accumulation": None}
    result = run_isolated(config)
    print({k: result.get(k) for k in ("batch", "remat", "optimizer", "precision",
                                      "step_time_s", "peak_tensor_mb", "peak_rss_mb",
                                      "error")}, flush=True)
    return result


def largest_batch(preset, seq, remat, optimizer, budget_mb, steps, start=8, limit=128,
                  bisect=True):
    """The largest batch whose peak tensor memory stays within the budget.

    Doubles from `start` up to `limit`; then, if `bisect`, narrows down between the
    last batch that fit and the first that did not. Returns (result, capped), where
    `capped` says the search stopped at `limit` with memory to spare.
    """
    best, batch = None, start
    while batch <= limit:
        result = measure(preset, batch, seq, remat, optimizer, steps)
        if "error" in result or result["peak_tensor_mb"] > budget_mb:
            break
        best, batch = result, batch * 2
    if best is None or batch > limit or not bisect:
        return best, batch > limit
    low, high = best["batch"], best["batch"] * 2
    while high - low > max(1, low // 8):
        middle = (low + high) // 2
        result = measure(preset, middle, seq, remat, optimizer, steps)
        if "error" not in result and result["peak_tensor_mb"] <= budget_mb:
            best, low = result, middle
        else:
            high = middle
    return best, False


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for remat in sorted({row["remat"] for row in rows}):
        points = sorted((r["batch"], r["peak_tensor_mb"] / 1024) for r in rows
                        if r["remat"] == remat and "error" not in r)
        axis.plot(*zip(*points), marker="o", label=f"remat={remat}")
    axis.set_xlabel("batch size")
    axis.set_ylabel("peak tensor memory (GiB)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="albert_base")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batches", default="8,16,32",
                        help="batch sizes of the memory curve; empty to skip it")
    parser.add_argument("--remat", default="none,selective,full",
                        help="remat modes of the memory curve; the first is the baseline")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--budget-mb", type=float, default=None,
                        help="also search the largest batch within this budget")
    parser.add_argument("--max-batch", type=int, default=128,
                        help="stop the doubling search for the budget here")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    batches = [int(b) for b in args.batches.split(",")] if args.batches else []
    modes = args.remat.split(",")
    rows = [measure(args.preset, b, args.seq, remat, "adam", args.steps)
            for b in batches for remat in modes]
    table, ratios = [], []
    if rows:
        table = ["| batch | remat | step time (s) | peak tensor MiB | peak RSS MiB |",
                 "|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            table.append(f"| {row['batch']} | {row['remat']} | error | | |")
        else:
            table.append(f"| {row['batch']} | {row['remat']} | {row['step_time_s']} | "
                         f"{row['peak_tensor_mb']} | {row['peak_rss_mb']} |")
    baseline_mode = modes[0]
    for batch in batches:
        measured = {r["remat"]: r for r in rows if r["batch"] == batch and "error" not in r}
        base = measured.get(baseline_mode)
        for mode in modes[1:]:
            if base and mode in measured:
                ratios.append(
                    f"- batch {batch}: {mode}/{baseline_mode} memory "
                    f"{measured[mode]['peak_tensor_mb'] / base['peak_tensor_mb']:.2f}, "
                    f"step time {measured[mode]['step_time_s'] / base['step_time_s']:.2f}"
                )
    png = ROOT / "docs" / f"memory_{args.preset}_seq{args.seq}.png"
    if rows:
        png.parent.mkdir(exist_ok=True)
        plot(rows, png, f"{args.preset}, seq {args.seq}, Adam, float32")
    budget_lines = []
    if args.budget_mb:
        baseline, _ = largest_batch(args.preset, args.seq, "none", "adam", args.budget_mb,
                                    args.steps, limit=args.max_batch)
        saving, capped = largest_batch(args.preset, args.seq, "full", "adafactor",
                                       args.budget_mb, args.steps, limit=args.max_batch,
                                       bisect=False)
        for label, best in (("no remat + Adam", baseline), ("remat full + AdaFactor", saving)):
            size = best["batch"] if best else "none"
            memory = f" (peak {best['peak_tensor_mb']} MiB)" if best else ""
            budget_lines.append(
                f"- {label}: largest batch within {args.budget_mb:.0f} MiB = {size}{memory}"
            )
        if capped:
            budget_lines.append(f"  (the doubling search stopped at --max-batch "
                                f"{args.max_batch}; more may fit)")
        if baseline and saving:
            bound = ">= " if capped else ""
            budget_lines.append(f"- ratio: {bound}{saving['batch'] / baseline['batch']:.2f}x")
    command = "python benchmarks/memory_remat.py " + " ".join(
        a for a in sys.argv[1:] if a != "--write")
    body = "\n".join([
        f"Peak memory of a pretraining step (MLM + SOP) of {args.preset} at seq {args.seq}, "
        "float32, measured by `keras-albert bench train` in a fresh process per row. "
        "'Peak tensor' is TensorFlow's CPU allocator peak (TF_CPU_ALLOCATOR_USE_BFC=true); "
        "peak RSS includes the runtime (about 0.9 GiB).",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores  ",
        f"Date: {datetime.date.today().isoformat()}",
        "",
        *table,
        "",
        *ratios,
        *budget_lines,
        "",
        *([f"![peak memory against batch size]({png.name})"] if rows else []),
    ])
    print(body)
    if args.write:
        kind = "against batch size" if rows else f"within {args.budget_mb:.0f} MiB"
        replace_section(ROOT / "docs" / "benchmarks.md",
                        f"Memory {kind}: recompute and AdaFactor ({args.preset}, seq {args.seq})",
                        body)


if __name__ == "__main__":
    main()
