"""The `keras-albert` command line.

    keras-albert presets                      # list the named configurations
    keras-albert info albert_base             # config and exact parameter count
    keras-albert info albert_base --json --set embedding_dim=64 --set sharing=none
    keras-albert bench train --preset albert_base --batch 8 --seq 128 --remat none,full
    keras-albert convert hf_model_dir model.keras          # or a Hugging Face directory:
    keras-albert convert albert_tf1_dir albert_hf --format hf --heads
    keras-albert demo                                      # the whole pipeline, offline
    keras-albert pretrain --corpus corpus.txt.gz --preset albert_base --output run/
    keras-albert finetune --model run/ --train train.tsv --eval dev.tsv --output sst2/
    keras-albert distill --teacher sst2/ --train train.tsv --eval dev.tsv --output student/
"""

import argparse
import ast
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parse_override(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare word such as `none` or `gelu` stays a string
    return key.strip(), value


def _info(args):
    from keras_albert.models.encoder import Encoder
    from keras_albert.presets import preset_config, preset_description, preset_family

    overrides = dict(args.set or [])
    try:
        config = preset_config(args.preset, **overrides)
        encoder = Encoder(**config)
    except (ValueError, TypeError) as error:
        print(f"keras-albert info: {error}", file=sys.stderr)
        return 2
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


def _presets(args):
    from keras_albert.presets import list_presets, preset_description

    for name in list_presets():
        print(f"{name:18s} {preset_description(name)}")
    return 0


def _bench_train(args):
    from training.benchmark import bench_train

    try:
        return bench_train(args)
    except ValueError as error:
        print(f"keras-albert bench train: {error}", file=sys.stderr)
        return 2


def _convert(args):
    from keras_albert.conversion.pretrained import convert

    try:
        path = convert(
            args.source,
            args.destination,
            format=args.format,
            heads=args.heads,
            allow_pickle=args.allow_pickle,
            overwrite=args.overwrite,
            timeout=args.timeout,
        )
    except (ValueError, TypeError, OSError, ImportError) as error:
        print(f"keras-albert convert: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-albert",
        description="Compact BERT-family encoders (ALBERT, BERT, DistilBERT) for Keras 3.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser(
        "info", help="print a preset's configuration and exact parameter count"
    )
    info.add_argument("preset", help="a preset name; `keras-albert presets` lists them")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument(
        "--set",
        action="append",
        type=_parse_override,
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set embedding_dim=64 --set sharing=none",
    )
    info.set_defaults(handler=_info)

    presets = commands.add_parser("presets", help="list the preset names")
    presets.set_defaults(handler=_presets)

    bench = commands.add_parser("bench", help="benchmarks")
    bench_kinds = bench.add_subparsers(dest="kind", required=True)
    train = bench_kinds.add_parser(
        "train",
        help="time and peak memory of a pretraining step (MLM + SOP), each "
        "configuration in a fresh process; comma-separated values are compared",
    )
    from training.benchmark import add_arguments

    add_arguments(train)
    train.set_defaults(handler=_bench_train)

    convert = commands.add_parser(
        "convert",
        help="convert a checkpoint (Hugging Face directory or hf://owner/name, keras-hub "
        "preset, original ALBERT TF1 checkpoint) to a .keras file or a Hugging Face "
        "directory, strictly",
    )
    convert.add_argument("source", help="checkpoint directory, TF1 prefix or hf://owner/name")
    convert.add_argument(
        "destination", help="a path ending in .keras, or a directory (Hugging Face format)"
    )
    convert.add_argument(
        "--format", choices=("keras", "hf"), help="output format (default: from DESTINATION)"
    )
    convert.add_argument(
        "--heads", action="store_true",
        help="keep the masked-LM and SOP / NSP heads (a PretrainingModel)",
    )
    convert.add_argument(
        "--allow-pickle", action="store_true",
        help="read pytorch_model.bin (a pickle; only for files you trust)",
    )
    convert.add_argument("--overwrite", action="store_true", help="replace DESTINATION")
    convert.add_argument(
        "--timeout", type=float, default=20.0, help="seconds to wait for the Hub (default 20)"
    )
    convert.set_defaults(handler=_convert)

    from training.commands import COMMANDS

    for name, (help_text, add_arguments, handler) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(handler=_reporting_errors(name, handler))
    return parser


def _reporting_errors(name, handler):
    """Bad input ends the command with one clear line and exit code 2, not a traceback."""

    def run(args):
        if os.environ.get("KERAS_ALBERT_DEBUG"):  # full tracebacks for bug reports
            return handler(args)
        try:
            return handler(args)
        except (ValueError, TypeError, OSError, ImportError, RuntimeError) as error:
            print(f"keras-albert {name}: {error}", file=sys.stderr)
            return 2

    return run


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
