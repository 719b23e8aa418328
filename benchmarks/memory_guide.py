"""What each memory option saves: remat, AdaFactor, bfloat16, gradient accumulation.

For each preset, runs `keras-albert bench train` configurations at one fixed shape
(each configuration in a fresh Python process, exactly as the bench command does):

    baseline      float32, Adam, no remat, no accumulation
    remat         + --remat full
    selective     + --remat selective (recompute attention and the cheap ops only)
    adafactor     --optimizer adafactor instead of Adam
    bf16          --precision mixed_bfloat16
    accumulation  --accumulation N with micro-batches of batch/N (same effective batch)
    remat_adafactor  remat full + AdaFactor, float32, no accumulation
    all           all four together

and writes a Markdown table (peak memory, saving against the baseline, step time per
effective batch against the baseline, counted optimizer state) and a PNG plot:

    python benchmarks/memory_guide.py --presets albert_base,bert_base --batch 8 --seq 256 \\
        --steps 2 --warmup 1 --png docs/memory_guide.png --write

`--write` replaces the "Measurements" section of docs/memory.md; `--markdown PATH`
writes the same section to PATH; `--json PATH` saves the raw results.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peers_train_step import replace_section  # noqa: E402
from keras_albert.cli import build_parser  # noqa: E402
from keras_albert.training.benchmark import configurations, run_isolated  # noqa: E402

CONFIGURATIONS = ("baseline", "remat", "selective", "adafactor", "bf16", "accumulation",
                  "remat_adafactor", "all")
DESCRIPTIONS = {
    "baseline": "float32, Adam, no remat",
    "remat": "+ `--remat full`",
    "selective": "+ `--remat selective`",
    "adafactor": "`--optimizer adafactor`",
    "bf16": "`--precision mixed_bfloat16`",
    "accumulation": "`--accumulation {n}`, micro-batch {micro}",
    "remat_adafactor": "remat full + AdaFactor (float32)",
    "all": "all four together (micro-batch {micro})",
}
SECTION = "Measurements"


def bench_arguments(name, preset, batch, seq, accumulation, steps, warmup):
    """The `keras-albert bench train` arguments of one named configuration."""
    remat, precision, optimizer, micro, accumulate = "none", "float32", "adam", batch, None
    if name in ("remat", "remat_adafactor", "all"):
        remat = "full"
    elif name == "selective":
        remat = "selective"
    if name in ("adafactor", "remat_adafactor", "all"):
        optimizer = "adafactor"
    if name in ("bf16", "all"):
        precision = "mixed_bfloat16"
    if name in ("accumulation", "all"):
        if batch % accumulation:
            raise ValueError(f"--batch {batch} is not a multiple of --accumulation "
                             f"{accumulation}.")
        micro, accumulate = batch // accumulation, accumulation
        # Time at least one full accumulation cycle (micro-steps, not updates).
        steps = max(steps, accumulation)
    arguments = ["--preset", preset, "--batch", str(micro), "--seq", str(seq),
                 "--remat", remat, "--precision", precision, "--optimizer", optimizer]
    if accumulate:
        arguments += ["--accumulation", str(accumulate)]
    return arguments + ["--steps", str(steps), "--warmup", str(warmup), "--json"]


def run_configuration(name, arguments):
    """Parses the bench arguments as the CLI does and runs that configuration isolated.

    (The CLI's `validate` is skipped: it imports TensorFlow into this parent process,
    and an invalid preset or option fails in the child and is reported as an error row.)
    """
    args = build_parser().parse_args(["bench", "train", *arguments])
    (config,) = list(configurations(args))
    result = run_isolated(config)
    result["name"] = name
    result["command"] = "keras-albert bench train " + " ".join(arguments)
    accumulation = config.get("accumulation") or 1
    result["effective_batch"] = config["batch"] * accumulation
    if "error" not in result:
        # One optimizer update = `accumulation` micro-steps (median micro-step time).
        result["effective_step_s"] = round(result["step_time_s"] * accumulation, 4)
    print(json.dumps({k: result.get(k) for k in (
        "name", "preset", "batch", "accumulation", "step_time_s", "peak_tensor_mb",
        "peak_rss_mb", "optimizer_state_mb", "error")}), flush=True)
    return result


def with_relations(results):
    """Adds memory saving and time ratio against each preset's baseline."""
    for preset in dict.fromkeys(r["preset"] for r in results):
        rows = [r for r in results if r["preset"] == preset]
        base = next((r for r in rows if r["name"] == "baseline" and "error" not in r), None)
        for row in rows:
            if base is None or "error" in row:
                continue
            row["memory_ratio"] = round(row["peak_tensor_mb"] / base["peak_tensor_mb"], 3)
            row["saving_mb"] = round(base["peak_tensor_mb"] - row["peak_tensor_mb"], 1)
            row["time_ratio"] = round(row["effective_step_s"] / base["effective_step_s"], 2)
    return results


def _describe(row, accumulation):
    text = DESCRIPTIONS[row["name"]]
    return text.format(n=accumulation, micro=row["batch"]) if "{" in text else text


def markdown_tables(results, accumulation):
    lines = []
    for preset in dict.fromkeys(r["preset"] for r in results):
        rows = [r for r in results if r["preset"] == preset]
        params = next((r["params"] for r in rows if "params" in r), None)
        shape = f"effective batch {rows[0]['effective_batch']}, seq {rows[0]['seq']}"
        size = f", {params / 1e6:.1f}M parameters" if params else ""
        lines += [f"### {preset} ({shape}{size})", "",
                  "| configuration | options | peak tensor MiB | saving vs baseline | "
                  "peak RSS MiB | optimizer state MiB (counted) | s per update | "
                  "time vs baseline |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for row in rows:
            options = _describe(row, accumulation)
            if "error" in row:
                lines.append(f"| {row['name']} | {options} | error: {row['error'][:80]} "
                             "| | | | | |")
                continue
            related = "memory_ratio" in row and row["name"] != "baseline"
            saving = (f"{row['saving_mb']:.0f} MiB ({1 - row['memory_ratio']:.0%})"
                      if related else "-")
            ratio = f"{row['time_ratio']:.2f}x" if "time_ratio" in row else "-"
            lines.append(
                f"| {row['name']} | {options} | {row['peak_tensor_mb']:.0f} | {saving} | "
                f"{row['peak_rss_mb']:.0f} | {row['optimizer_state_mb']:.2f} | "
                f"{row['effective_step_s']:.2f} | {ratio} |")
        lines.append("")
    return lines


def plot(results, path):
    """Horizontal bars of peak tensor memory per configuration, one panel per preset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = list(dict.fromkeys(r["preset"] for r in results))
    figure, axes = plt.subplots(1, len(presets), figsize=(5.4 * len(presets), 4.4),
                                squeeze=False)
    for axis, preset in zip(axes[0], presets):
        rows = [r for r in results if r["preset"] == preset and "error" not in r]
        names = [r["name"] for r in rows]
        memory = [r["peak_tensor_mb"] / 1024 for r in rows]
        state = [r["optimizer_state_mb"] / 1024 for r in rows]
        positions = list(range(len(rows)))[::-1]
        axis.barh(positions, memory, color="#4c72b0", label="peak tensor memory")
        axis.barh(positions, state, color="#dd8452", label="of which optimizer state (counted)")
        for y, row, value in zip(positions, rows, memory):
            note = ""
            if "memory_ratio" in row and row["name"] != "baseline":
                note = f" {row['memory_ratio'] - 1:+.0%}, {row['time_ratio']:.2f}x time"
            axis.text(value, y, note, va="center", fontsize=8)
        axis.set_yticks(positions, names)
        axis.set_xlim(0, max(memory) * 1.55 if memory else 1)
        axis.set_xlabel("GiB")
        effective = rows[0]["effective_batch"] if rows else "?"
        seq = rows[0]["seq"] if rows else "?"
        axis.set_title(f"{preset}, batch {effective} x seq {seq}", fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.suptitle("Peak training memory per option (label: memory change, time per "
                    "update, vs baseline)", fontsize=9)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="albert_base,bert_base")
    parser.add_argument("--configs", default=",".join(CONFIGURATIONS),
                        help=f"comma-separated subset of {', '.join(CONFIGURATIONS)}")
    parser.add_argument("--batch", type=int, default=8, help="effective batch size")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--accumulation", type=int, default=4,
                        help="micro-batches per update in the accumulation rows")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--png", default=None, help="write the plot here (needs matplotlib)")
    parser.add_argument("--markdown", default=None, help="write the section here")
    parser.add_argument("--json", default=None, help="write the raw results here")
    parser.add_argument("--write", action="store_true",
                        help=f"replace the '{SECTION}' section of docs/memory.md")
    args = parser.parse_args(argv)

    names = [n for n in args.configs.split(",") if n]
    unknown = sorted(set(names) - set(CONFIGURATIONS))
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; known: {CONFIGURATIONS}")
    results = []
    for preset in args.presets.split(","):
        for name in names:
            arguments = bench_arguments(name, preset, args.batch, args.seq,
                                        args.accumulation, args.steps, args.warmup)
            results.append(run_configuration(name, arguments))
    with_relations(results)

    plotted = False
    if args.png:
        try:
            plot(results, args.png)
            plotted = True
        except ImportError:
            print("matplotlib is not installed (pip install -e '.[bench]'); no plot written.",
                  file=sys.stderr)
    command = "python benchmarks/memory_guide.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]) if a != "--write")
    body = "\n".join([
        f"Command: `{command}`  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "",
        *markdown_tables(results, args.accumulation),
        "Each row is one `keras-albert bench train` run in a fresh process:",
        "",
        *[f"    {r['command']}" for r in results],
        "",
        *([f"![peak memory per option]({pathlib.Path(args.png).name})"] if plotted else []),
    ])
    print(body)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(f"## {SECTION}\n\n{body}\n")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    if args.write:
        replace_section(ROOT / "docs" / "memory.md", SECTION, body)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
