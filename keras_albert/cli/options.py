"""Option groups the training commands share, and small argument parsers.

Nothing here imports TensorFlow: the parser must answer `--help` at once.
"""

import argparse
import ast

from keras_albert.training.strategy import STRATEGIES

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
OPTIMIZERS = ("adam", "adamw", "lamb", "adafactor")
# The kinds `finetune` trains (`keras_albert.models.task_kinds.TASK_KINDS`; a test
# checks the two agree).
TASK_KINDS = ("classification", "regression", "multilabel", "token", "span")


def parse_override(text):
    """`KEY=VALUE` -> `(key, value)`, the value read as a Python literal when it is one.

    >>> parse_override("num_layers=6"), parse_override("activation=gelu")
    (('num_layers', 6), ('activation', 'gelu'))
    """
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare word such as `none` or `gelu` stays a string
    return key.strip(), value


def csv_of(kind):
    """An argparse type: comma-separated values of `kind`.

    >>> csv_of(int)("8,16")
    [8, 16]
    """
    return lambda text: [kind(item) for item in text.split(",")]


def add_training_options(parser, optimizer="adamw", learning_rate=None, batch=32, seq=128):
    group = parser.add_argument_group("training")
    group.add_argument("--output", required=True, help="directory for the model, logs, summary")
    group.add_argument("--overwrite", action="store_true",
                       help="replace the run already in OUTPUT (its model, summary, "
                       "vocabulary, logs and checkpoint; other files stay); without it "
                       "such a folder is refused, unless the run continues its checkpoint")
    group.add_argument("--batch", type=int, default=batch, help=f"global batch size ({batch})")
    group.add_argument("--seq", type=int, default=seq, help=f"sequence length ({seq})")
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=optimizer,
                       help=f"optimizer ({optimizer})")
    group.add_argument("--learning-rate", type=float, default=learning_rate,
                       help="peak learning rate (AdaFactor: omit for its relative step)")
    group.add_argument("--warmup", type=float, default=0.06,
                       help="warm-up as a fraction of the steps (0.06), then linear decay")
    group.add_argument("--weight-decay", type=float, default=0.01,
                       help="decoupled weight decay, not on LayerNorm and biases (0.01)")
    group.add_argument("--clip-norm", type=float, default=1.0,
                       help="clip the gradients' global norm (1.0, as BERT; 0 disables)")
    group.add_argument("--seed", type=int, default=0)
    memory = parser.add_argument_group("memory and scale")
    memory.add_argument("--remat", default="none",
                        help="gradient checkpointing: none, selective, full or every_K (none)")
    memory.add_argument("--precision", choices=PRECISIONS, default="float32")
    memory.add_argument("--accumulation", type=int, default=None,
                        help="gradient accumulation steps (>= 2)")
    memory.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help="tf.distribute strategy (auto: TPU, workers, GPUs or one device)")
    memory.add_argument("--steps-per-execution", type=int, default=1,
                        help="training steps per tf.function call (1; > 1 is refused under "
                        "mirrored and multi_worker)")
    memory.add_argument("--xla", action="store_true", help="compile the train step with XLA")
    faults = parser.add_argument_group("checkpoints and resumption")
    resume = faults.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="resume", action="store_const", const="require",
                        default="auto",
                        help="continue the interrupted run in OUTPUT from its last checkpoint "
                        "(fails if there is none); by default a checkpoint is continued "
                        "when there is one")
    resume.add_argument("--no-resume", dest="resume", action="store_const", const="restart",
                        help="start over, discarding any checkpoint in OUTPUT/backup")
    faults.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                        help="also checkpoint every STEPS steps (default: every epoch)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_task_data_options(parser):
    data = parser.add_argument_group("data")
    data.add_argument("--train", required=True,
                      help="training data: a .tsv/.csv/.jsonl file (.gz ok) or tfds:NAME "
                      "(e.g. tfds:glue/sst2, needs network)")
    data.add_argument("--eval", help="evaluation data (file or tfds:NAME:split)")
    data.add_argument("--holdout", type=float, default=None,
                      help="hold out this fraction of --train for evaluation instead")
    data.add_argument("--task", choices=TASK_KINDS,
                      help="default: inferred from the labels, or from a JSONL file's keys "
                      "(tokens + tags: token; question + context: span)")
    data.add_argument("--text-columns", nargs="+", help="one or two text columns")
    data.add_argument("--label-column", help="the label column")
    data.add_argument("--limit", type=int,
                      help="train on a random sample of this many rows (seeded by --seed)")
    data.add_argument("--replace-br", action="store_true",
                      help="replace '<br />' by a space in texts (IMDB)")


def optimizer_factory(args):
    """A callable `total_steps -> optimizer` for the run's options (the schedule ends
    where training does)."""
    from keras_albert.optimizers import create_optimizer

    learning_rate = args.learning_rate
    if learning_rate is None and args.optimizer != "adafactor":
        learning_rate = 5e-5

    def make(total_steps):
        return create_optimizer(
            args.optimizer,
            learning_rate,
            total_steps=total_steps if learning_rate is not None else None,
            warmup_steps=int(args.warmup * total_steps),
            weight_decay=args.weight_decay,
            gradient_accumulation_steps=args.accumulation,
            global_clipnorm=args.clip_norm or None,
        )

    return make


def runtime_options(args):
    """The encoder options a command line sets on any model it loads."""
    return {"remat": args.remat, "dtype": args.precision}


def task_data_options(args):
    """The `read_task_splits` arguments a command line gives."""
    return dict(eval_spec=args.eval, holdout=args.holdout, task=args.task,
                text_columns=args.text_columns, label_column=args.label_column,
                limit=args.limit, replace_br=args.replace_br, seed=args.seed)
