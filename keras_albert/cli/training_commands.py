"""`keras-albert pretrain | finetune | distill | demo`: options and thin handlers.

Each command prints Keras's progress bar while it trains, writes its run directory
(`keras_albert.training.run_directory`: the model, its vocabulary, TensorBoard logs,
`summary.json`) to `--output`, and ends with a one-line JSON summary. Checkpoints
(`OUTPUT/backup`) let a killed run started again with the same command continue
exactly where it stopped, mid-epoch included: by default when a checkpoint exists,
with `--resume` necessarily (it fails if there is none), never with `--no-resume`.
A folder holding another run (a model, a vocabulary, logs) is refused unless the
run continues its checkpoint; `--overwrite` replaces that run.

`--strategy multi_worker` runs one process per worker with `TF_CONFIG` set; every
worker runs the same command, `--batch` is the global batch, and only the chief
(worker 0) writes `OUTPUT`.
"""

import json
import math
import os

from keras_albert.cli.options import (
    add_task_data_options,
    add_training_options,
    optimizer_factory,
    parse_override,
    runtime_options,
    task_data_options,
)
from keras_albert.training.strategy import STRATEGIES


def _start(args):
    """The strategy, then the seeds: MultiWorkerMirroredStrategy configures collective
    ops, which must happen before TensorFlow runs anything else. Seeding (Python,
    NumPy, TensorFlow, Keras) makes initial weights and dropout the same in every run,
    process and worker with the same --seed."""
    import keras

    from keras_albert.training.strategy import resolve_strategy

    strategy = resolve_strategy(args.strategy)
    keras.utils.set_random_seed(args.seed)
    return strategy


def _print_summary(summary):
    print(json.dumps({key: value for key, value in summary.items() if key != "history"}))


# Options that count something: below 1 no run can use them (0 steps trains nothing,
# or divides by zero), so they are refused before anything loads.
_COUNTS = ("batch", "seq", "epochs", "steps", "steps_per_epoch", "max_steps",
           "eval_steps", "max_predictions", "checkpoint_every", "steps_per_execution",
           "student_layers")


def _check_training_options(args):
    """Refuses counts below 1 and a learning rate that is not a finite number > 0 (a
    NaN rate trains a NaN model), with one line, before anything is loaded."""
    for name in _COUNTS:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got {value}.")
    rate = args.learning_rate
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"--learning-rate must be a finite number > 0; got {rate}.")


def _data_fingerprint(args):
    """What `finetune` and `distill` command lines add to the run's fingerprint about
    their data (the library adds the examples it was given, the model, the optimizer
    and the steps): the files (path, size, hash) or TFDS names, and how they are read."""
    from keras_albert.training.fingerprint import source_settings

    return {"train_source": source_settings(args.train),
            "eval_source": source_settings(args.eval), "holdout": args.holdout,
            "limit": args.limit, "text_columns": args.text_columns,
            "label_column": args.label_column, "replace_br": args.replace_br}


# === pretrain ===

def add_pretrain_arguments(parser):
    parser.add_argument("--corpus", nargs="+", required=True,
                        help="text files (.gz ok): one sentence a line, blank lines "
                        "between documents")
    parser.add_argument("--vocab", help="spiece.model or vocab.txt (default: train a "
                        "SentencePiece vocabulary on the corpus)")
    parser.add_argument("--vocab-size", type=int, default=30000,
                        help="pieces of the trained vocabulary (30000, as ALBERT)")
    parser.add_argument("--preset", default="albert_base", help="encoder preset (albert_base)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        type=parse_override,
                        help="override a preset field, e.g. --set num_layers=6")
    parser.add_argument("--steps", type=int, default=10000, help="training steps (10000)")
    parser.add_argument("--steps-per-epoch", type=int, default=1000,
                        help="steps between checkpoints and evaluations (1000)")
    parser.add_argument("--max-predictions", type=int, default=None,
                        help="masked positions per sequence (default 15%% of --seq)")
    parser.add_argument("--no-sop", action="store_true",
                        help="masked-LM only (no sentence-order prediction)")
    parser.add_argument("--eval-steps", type=int, default=20,
                        help="held-out batches evaluated before, after every epoch "
                        "and after training (20)")
    add_training_options(parser, optimizer="adafactor", batch=64)


def run_pretrain(args):
    from keras_albert.presets import preset_config
    from keras_albert.training.pretrain import pretrain_on_corpus

    _check_training_options(args)
    overrides = dict(args.set)
    reserved = {"seed", "remat", "dtype", "vocabulary_size"} & set(overrides)
    if reserved:
        raise ValueError(f"Set {sorted(reserved)} with their own options (--seed, --remat, "
                         "--precision, --vocab-size), not --set.")
    preset_config(args.preset, **overrides)  # an unknown preset or key: before any work
    strategy = _start(args)
    summary = pretrain_on_corpus(
        args.corpus, args.output, optimizer_factory(args), preset=args.preset,
        vocab=args.vocab, vocab_size=args.vocab_size, seq_length=args.seq,
        batch_size=args.batch, steps=args.steps, steps_per_epoch=args.steps_per_epoch,
        max_predictions=args.max_predictions, sentence_order=not args.no_sop,
        eval_steps=args.eval_steps, seed=args.seed, strategy=strategy,
        steps_per_execution=args.steps_per_execution, jit_compile=args.xla,
        resume=args.resume, checkpoint_every=args.checkpoint_every, overwrite=args.overwrite,
        verbose=0 if args.quiet else "auto", **{**overrides, **runtime_options(args)})
    _print_summary(summary)
    return 0


# === finetune ===

def add_finetune_arguments(parser):
    parser.add_argument("--model", required=True,
                        help="a preset (with --vocab), a keras-albert output directory or "
                        ".keras file, a Hugging Face directory, hf://owner/name, a keras-hub "
                        "preset directory or an ALBERT TF1 checkpoint")
    parser.add_argument("--vocab", help="spiece.model or vocab.txt (for presets)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, help="stop after this many steps in all")
    parser.add_argument("--dropout", type=float, default=0.1, help="head dropout (0.1)")
    parser.add_argument("--pooling", choices=("pooled", "mean", "first"), default="pooled",
                        help="what the classifier head reads: the pooler's output "
                        "(pooled), the mean of the real tokens' states (mean: for "
                        "sentence-embedding checkpoints) or the first token's (first)")
    parser.add_argument("--truncation", choices=("longest_first", "round_robin", "head_tail"),
                        default="longest_first",
                        help="how texts longer than --seq are cut: their end (longest_first, "
                        "the default; of pairs the longer text first), a token of each "
                        "text in turn (round_robin), or their middle (head_tail: keep the "
                        "first --head-tokens and the last pieces; Sun et al. 2019, for "
                        "long reviews)")
    parser.add_argument("--head-tokens", type=int,
                        help="with --truncation head_tail: the first pieces kept "
                        "(default a quarter of --seq minus 2: 64 at 256, 128 at 512)")
    add_task_data_options(parser)
    add_training_options(parser, optimizer="adamw", learning_rate=5e-5)


def _check_model_source(source):
    """A bare name that is neither a preset nor a path is most likely a mistyped
    preset: say so, with the presets (not just that no such file exists)."""
    from keras_albert.presets import list_presets

    if (source in list_presets() or "/" in source or os.sep in source
            or os.path.exists(source) or os.path.exists(f"{source}.index")):  # TF1 prefix
        return
    raise ValueError(f"Unknown preset {source!r}, and no file or directory of that name. "
                     f"Known presets: {', '.join(list_presets())}.")


def _finetune_fingerprint(args):
    """What a `finetune` command line adds to the run's fingerprint: its data files and
    the model's source (preset, or path) and vocabulary file; `finetune` adds the
    model's configuration, the optimizer's settings, the steps ..."""
    from keras_albert.training.fingerprint import file_settings, model_source_settings

    return {**_data_fingerprint(args), "model_source": model_source_settings(args.model),
            "vocab_file": file_settings(args.vocab) if args.vocab else None}


def run_finetune(args):
    from keras_albert.conversion.pretrained import load
    from keras_albert.models.task_kinds import task_model
    from keras_albert.training.finetune import finetune
    from keras_albert.training.task_sources import read_task_splits

    _check_training_options(args)
    if args.head_tokens is not None and args.truncation != "head_tail":
        raise ValueError("--head-tokens applies to --truncation head_tail only.")
    if args.head_tokens is not None and not 0 <= args.head_tokens <= args.seq - 2:
        raise ValueError(f"--head-tokens must be in [0, {args.seq - 2}] (--seq minus 2 for "
                         f"[CLS] and [SEP]); got {args.head_tokens}.")
    strategy = _start(args)
    train, evaluation = read_task_splits(args.train, **task_data_options(args))
    _check_model_source(args.model)
    with strategy.scope():
        encoder, preprocessor = load(args.model, vocab=args.vocab, seq_length=args.seq,
                                     **runtime_options(args))
        if args.truncation != "longest_first":
            preprocessor = preprocessor.with_truncation(args.truncation, args.head_tokens)
        model = task_model(encoder, train.task, train.num_classes, dropout=args.dropout,
                           pooling=args.pooling)
        summary = finetune(
            model, preprocessor, train, args.output, optimizer_factory(args),
            epochs=args.epochs, batch_size=args.batch, eval_data=evaluation, seed=args.seed,
            max_steps=args.max_steps, verbose=0 if args.quiet else "auto",
            jit_compile=args.xla, resume=args.resume, checkpoint_every=args.checkpoint_every,
            steps_per_execution=args.steps_per_execution, overwrite=args.overwrite,
            fingerprint=_finetune_fingerprint(args),
        )
    _print_summary(summary)
    return 0


# === distill ===

def add_distill_arguments(parser):
    parser.add_argument("--teacher", required=True,
                        help="a fine-tuned classifier (keras-albert finetune's --output "
                        "directory or its model.keras)")
    parser.add_argument("--student-layers", type=int, help="default: half the teacher's")
    parser.add_argument("--teacher-layers", type=int, nargs="+",
                        help="teacher layers the student starts from (default 0 2 4 ...)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, help="stop after this many steps in all")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha-ce", type=float, default=5.0,
                        help="weight of the soft-target KL term (5)")
    parser.add_argument("--alpha-mlm", type=float, default=2.0,
                        help="weight of the hard-label term (2)")
    parser.add_argument("--alpha-cos", type=float, default=1.0,
                        help="weight of the hidden-state cosine term (1)")
    add_task_data_options(parser)
    add_training_options(parser, optimizer="adamw", learning_rate=1e-4)


def run_distill(args):
    from keras_albert.training.distill import distill
    from keras_albert.training.task_sources import read_task_splits

    _check_training_options(args)
    strategy = _start(args)
    train, evaluation = read_task_splits(args.train, **task_data_options(args))
    with strategy.scope():
        summary = distill(
            args.teacher, train, args.output, optimizer_factory(args),
            student_layers=args.student_layers, teacher_layers=args.teacher_layers,
            temperature=args.temperature, alpha_ce=args.alpha_ce, alpha_mlm=args.alpha_mlm,
            alpha_cos=args.alpha_cos, seq_length=args.seq, epochs=args.epochs,
            batch_size=args.batch, eval_data=evaluation, seed=args.seed,
            max_steps=args.max_steps, resume=args.resume,
            checkpoint_every=args.checkpoint_every, overwrite=args.overwrite,
            steps_per_execution=args.steps_per_execution, jit_compile=args.xla,
            verbose=0 if args.quiet else "auto", fingerprint=_data_fingerprint(args),
            **runtime_options(args))
    _print_summary(summary)
    return 0


# === demo ===

def add_demo_arguments(parser):
    parser.add_argument("--output", default="keras_albert_demo",
                        help="output directory (keras_albert_demo)")
    parser.add_argument("--corpus", nargs="+",
                        help="your own text (default: text the Python installation ships)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run of every stage (about a minute), as the tests do")
    parser.add_argument("--pretrain-steps", type=int, default=None)
    parser.add_argument("--distill-steps", type=int, default=None)
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_demo(args):
    from keras_albert.training.demo import run_demo as run_whole_demo

    options = {}
    if args.pretrain_steps is not None:
        options["pretrain_steps"] = args.pretrain_steps
    if args.distill_steps is not None:
        options["distill_steps"] = args.distill_steps
    summary = run_whole_demo(args.output, corpus=args.corpus, quick=args.quick,
                             seed=args.seed, strategy=args.strategy,
                             verbose=0 if args.quiet else "auto", **options)
    print(json.dumps({key: summary[key] for key in ("teacher", "student", "total_seconds")}))
    return 0


COMMANDS = {
    "pretrain": ("pretrain an encoder with masked-LM + sentence-order prediction",
                 add_pretrain_arguments, run_pretrain),
    "finetune": ("fine-tune an encoder on a classification / regression / multi-label / "
                 "token-classification / span-QA task",
                 add_finetune_arguments, run_finetune),
    "distill": ("distill a fine-tuned classifier into a DistilBERT-style student",
                add_distill_arguments, run_distill),
    "demo": ("the whole pipeline offline: vocabulary, pretraining, distillation, export, "
             "serving", add_demo_arguments, run_demo),
}
