"""The `keras-albert` command line: parses, calls the library, prints.

    keras-albert presets                      # list the named configurations
    keras-albert info albert_base             # config and exact parameter count
    keras-albert info albert_base --json --set embedding_dim=64 --set sharing=none
    keras-albert bench train --preset albert_base --batch 8 --seq 128 --remat none,full
    keras-albert convert hf_model_dir model.keras          # or a Hugging Face directory:
    keras-albert convert albert_tf1_dir albert_hf --format hf --heads
    keras-albert export run/ serving_dir/                  # or --format hub
    keras-albert demo                                      # the whole pipeline, offline
    keras-albert pretrain --corpus corpus.txt.gz --preset albert_base --output run/
    keras-albert finetune --model run/ --train train.tsv --eval dev.tsv --output sst2/
    keras-albert distill --teacher sst2/ --train train.tsv --eval dev.tsv --output student/

Building the parser imports no TensorFlow, so `--help` answers at once; a command
imports what it needs after parsing, with TensorFlow's start-up lines held back
(`--verbose` shows them). Bad input ends a command with one line and exit code 2
(`KERAS_ALBERT_DEBUG=1` shows the traceback).
"""

import argparse
import os
import sys

from keras_albert.cli import model_commands, training_commands

__all__ = ["build_parser", "main"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-albert",
        description="Compact BERT-family encoders (ALBERT, BERT, DistilBERT) for Keras 3.",
    )
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and C++ log lines (warnings and "
                        "errors); without it they are held back")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (model_commands, training_commands):
        for name, (help_text, add_arguments, handler) in module.COMMANDS.items():
            command = commands.add_parser(name, help=help_text, description=help_text)
            add_arguments(command)
            command.set_defaults(handler=handler, command_name=name)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from keras_albert.quiet_startup import quiet_tensorflow_startup

    with quiet_tensorflow_startup(verbose=args.verbose):
        import keras_albert

        # Nothing here may start TensorFlow's runtime: MultiWorkerMirroredStrategy
        # must configure collective ops first (the command's first step).
        keras_albert.register_with_keras()
    name = " ".join(filter(None, (args.command_name, getattr(args, "kind", None))))
    if os.environ.get("KERAS_ALBERT_DEBUG"):  # full tracebacks for bug reports
        return args.handler(args)
    try:
        return args.handler(args)
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as error:
        print(f"keras-albert {name}: {error}", file=sys.stderr)
        return 2
