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
    from keras_albert.training.benchmark import bench_train

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


def _run_summary(spec):
    """The `summary.json` a `keras-albert finetune/distill` run wrote, or {}."""
    path = os.path.join(spec, "summary.json")
    if os.path.isdir(spec) and os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    return {}


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


def _export(args):
    from keras_albert.models.tasks import PretrainingModel
    from keras_albert.training.commands import load_encoder

    summary = _run_summary(args.model)
    seq_length = args.seq or summary.get("seq_length") or 128
    pairs = args.pairs or summary.get("text_inputs") == 2
    model, preprocessor = load_encoder(args.model, seq_length, args.vocab, whole_model=True)
    if args.format == "serving":
        from keras_albert.export import export_for_serving

        if isinstance(model, PretrainingModel):
            print("exporting the pretraining model's encoder (the heads need masked "
                  "positions; use --format hub for its mlm sub-object)", file=sys.stderr)
            model = model.encoder
        task = args.task or summary.get("task")
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
    from keras_albert.training.benchmark import add_arguments

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

    export = commands.add_parser(
        "export",
        help="export a model for TensorFlow Serving (OUTPUT/<version>/, raw-text and "
        "token-id signatures, warm-up records) or as TF-Hub-style encoder + preprocessor",
    )
    export.add_argument("model", help="a keras-albert output directory or .keras file, a "
                        "Hugging Face directory, a keras-hub preset directory, an ALBERT TF1 "
                        "checkpoint, or a preset (with --vocab)")
    export.add_argument("output", help="serving: the model's base directory (versions go "
                        "inside); hub: a directory for encoder/ and preprocessor/")
    export.add_argument("--format", choices=("serving", "hub"), default="serving")
    export.add_argument("--vocab", help="spiece.model or vocab.txt (when MODEL has none beside it)")
    export.add_argument("--seq", type=int, default=None,
                        help="sequence length of the in-graph packing (default: the "
                        "fine-tuning run's, else 128)")
    export.add_argument("--version", type=int, default=None,
                        help="serving version number (default: the next free one)")
    export.add_argument("--pairs", action="store_true",
                        help="serve text pairs (text_a, text_b); default: as the model "
                        "was fine-tuned")
    export.add_argument("--task", choices=("classification", "regression", "multilabel",
                                           "token"),
                        help="picks the derived outputs (default: the run's task, else "
                        "from the output shape)")
    export.add_argument("--warmup-file", help="example requests for the warm-up records, "
                        "one text a line (pairs: text_a<TAB>text_b)")
    export.set_defaults(handler=_reporting_errors("export", _export))

    from keras_albert.training.commands import COMMANDS

    for name, (help_text, add_command_arguments, handler) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        add_command_arguments(command)
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
