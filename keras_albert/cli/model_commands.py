"""`keras-albert presets | info | bench | convert | export`: the model zoo's commands.

Parsers import nothing heavy; handlers import the library when they run.
"""

import json
import os
import sys

from keras_albert.cli.options import csv_of, parse_override

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
EXPORT_TASKS = ("classification", "regression", "multilabel", "token")


# === presets, info ===

def add_presets_arguments(parser):
    del parser  # no options


def run_presets(args):
    from keras_albert.presets import list_presets, preset_description

    for name in list_presets():
        print(f"{name:18s} {preset_description(name)}")
    return 0


def add_info_arguments(parser):
    parser.add_argument("preset", help="a preset name; `keras-albert presets` lists them")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--set", action="append", type=parse_override, metavar="KEY=VALUE",
                        help="override a config field, e.g. --set embedding_dim=64 "
                        "--set sharing=none")


def run_info(args):
    from keras_albert.models.encoder import Encoder
    from keras_albert.presets import preset_config, preset_description, preset_family

    encoder = Encoder(**preset_config(args.preset, **dict(args.set or [])))
    params = encoder.count_params()
    summary = {
        "preset": args.preset,
        "family": preset_family(args.preset),
        "description": preset_description(args.preset),
        "params": params,
        **encoder.get_config(),
    }
    for key in ("name", "trainable", "dtype"):
        summary.pop(key, None)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return 0
    print(f"{args.preset}: {summary['description']}")
    for key in sorted(summary):
        if key not in ("preset", "description", "params"):
            print(f"  {key:22s} {summary[key]}")
    print(f"  {'params':22s} {params:,}")
    return 0


# === bench ===

def add_bench_arguments(parser):
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    train = kinds.add_parser(
        "train",
        help="time and peak memory of a pretraining step (MLM + SOP), each "
        "configuration in a fresh process; comma-separated values are compared")
    train.add_argument("--preset", type=csv_of(str), default=["albert_base"],
                       help="preset name(s), comma-separated")
    train.add_argument("--set", action="append", type=parse_override, default=[],
                       metavar="KEY=VALUE", help="override a field of every preset, e.g. "
                       "--set key_size=128 (remat and precision have their own options)")
    train.add_argument("--batch", type=csv_of(int), default=[8], help="batch size(s)")
    train.add_argument("--seq", type=csv_of(int), default=[128], help="sequence length(s)")
    train.add_argument("--remat", type=csv_of(str), default=["none"],
                       help="none, selective, full or every_k (comma-separated to compare)")
    train.add_argument("--precision", type=csv_of(str), default=["float32"],
                       help=f"one or more of {', '.join(PRECISIONS)}")
    train.add_argument("--optimizer", type=csv_of(str), default=["adam"],
                       help="adam, adamw, lamb or adafactor (comma-separated)")
    train.add_argument("--accumulation", type=int, default=None,
                       help="gradient accumulation steps (>= 2)")
    train.add_argument("--steps", type=int, default=5, help="timed steps")
    train.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    train.add_argument("--xla", action="store_true", help="jit_compile=True")
    train.add_argument("--json", action="store_true", help="print one JSON list")


def run_bench(args):
    from keras_albert.training.benchmark import bench_train

    return bench_train(args)


# === convert ===

def add_convert_arguments(parser):
    parser.add_argument("source", help="checkpoint directory, TF1 prefix or hf://owner/name")
    parser.add_argument("destination",
                        help="a path ending in .keras, or a directory (Hugging Face format)")
    parser.add_argument("--format", choices=("keras", "hf"),
                        help="output format (default: from DESTINATION)")
    parser.add_argument("--heads", action="store_true",
                        help="keep the masked-LM and SOP / NSP heads (a PretrainingModel)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="read pytorch_model.bin (a pickle; only for files you trust)")
    parser.add_argument("--overwrite", action="store_true", help="replace DESTINATION")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds to wait for the Hub (default 20)")


def run_convert(args):
    from keras_albert.conversion.pretrained import convert

    path = convert(args.source, args.destination, format=args.format, heads=args.heads,
                   allow_pickle=args.allow_pickle, overwrite=args.overwrite,
                   timeout=args.timeout)
    print(f"wrote {path}")
    return 0


# === export ===

def add_export_arguments(parser):
    parser.add_argument("model", help="a keras-albert output directory or .keras file, a "
                        "Hugging Face directory, a keras-hub preset directory, an ALBERT TF1 "
                        "checkpoint, or a preset (with --vocab)")
    parser.add_argument("output", help="serving: the model's base directory (versions go "
                        "inside); hub: a directory for encoder/ and preprocessor/")
    parser.add_argument("--format", choices=("serving", "hub"), default="serving")
    parser.add_argument("--vocab",
                        help="spiece.model or vocab.txt (when MODEL has none beside it)")
    parser.add_argument("--seq", type=int, default=None,
                        help="sequence length of the in-graph packing (default: the "
                        "fine-tuning run's, else 128)")
    parser.add_argument("--version", type=int, default=None,
                        help="serving version number (default: the next free one)")
    parser.add_argument("--pairs", action="store_true",
                        help="serve text pairs (text_a, text_b); default: as the model "
                        "was fine-tuned")
    parser.add_argument("--task", choices=EXPORT_TASKS,
                        help="picks the derived outputs (default: the run's task, else "
                        "from the output shape)")
    parser.add_argument("--warmup-file", help="example requests for the warm-up records, "
                        "one text a line (pairs: text_a<TAB>text_b)")


def _read_warmup_file(path, pairs):
    with open(path, encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle if line.strip()]
    if not pairs:
        return lines
    rows = [line.split("\t") for line in lines]
    bad = [index + 1 for index, row in enumerate(rows) if len(row) != 2]
    if bad:
        raise ValueError(f"{path}: pairs need 'text_a<TAB>text_b' lines; line {bad[0]} is not.")
    return [tuple(row) for row in rows]


def run_export(args):
    from keras_albert.conversion.pretrained import load
    from keras_albert.models.tasks import PretrainingModel
    from keras_albert.training.finetune import preprocessor_as_trained
    from keras_albert.training.run_directory import read_summary

    if args.seq is not None and args.seq < 1:
        raise ValueError(f"--seq must be >= 1; got {args.seq}.")
    summary = read_summary(args.model)
    # None: `load`'s default (128, or the model's position table when shorter).
    seq_length = args.seq or summary.get("seq_length")
    pairs = args.pairs or summary.get("text_inputs") == 2
    model, preprocessor = load(args.model, vocab=args.vocab, seq_length=seq_length,
                               task_model=True)
    # Serve texts cut as training cut them (finetune --truncation head_tail).
    preprocessor = preprocessor_as_trained(preprocessor, summary)
    if args.format == "serving":
        from keras_albert.export import export_for_serving

        if isinstance(model, PretrainingModel):
            print("exporting the pretraining model's encoder (the heads need masked "
                  "positions; use --format hub for its mlm sub-object)", file=sys.stderr)
            model = model.encoder
        task = args.task or summary.get("task")
        if task == "span":  # start and end logits: served as the model returns them
            task = None
        warmup = _read_warmup_file(args.warmup_file, pairs) if args.warmup_file else None
        path = export_for_serving(model, args.output, preprocessor, version=args.version,
                                  pairs=pairs, task=task, warmup_texts=warmup)
        print(f"wrote {path}")
        return 0
    from keras_albert.export import export_hub_encoder, export_hub_preprocessor

    encoder_dir = os.path.join(args.output, "encoder")
    preprocessor_dir = os.path.join(args.output, "preprocessor")
    for path in (encoder_dir, preprocessor_dir):
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists; export to a new directory.")
    hub_model = model if isinstance(model, PretrainingModel) else getattr(model, "encoder", model)
    export_hub_encoder(hub_model, encoder_dir)
    export_hub_preprocessor(preprocessor, preprocessor_dir, seq_length=preprocessor.seq_length)
    print(f"wrote {encoder_dir} and {preprocessor_dir}")
    return 0


COMMANDS = {
    "info": ("print a preset's configuration and exact parameter count",
             add_info_arguments, run_info),
    "presets": ("list the preset names", add_presets_arguments, run_presets),
    "bench": ("benchmarks", add_bench_arguments, run_bench),
    "convert": ("convert a checkpoint (Hugging Face directory or hf://owner/name, keras-hub "
                "preset, original ALBERT TF1 checkpoint) to a .keras file or a Hugging Face "
                "directory, strictly", add_convert_arguments, run_convert),
    "export": ("export a model for TensorFlow Serving (OUTPUT/<version>/, raw-text and "
               "token-id signatures, warm-up records) or as TF-Hub-style encoder + "
               "preprocessor", add_export_arguments, run_export),
}
