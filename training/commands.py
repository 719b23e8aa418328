"""`keras-albert pretrain | finetune | distill | demo`: arguments and handlers.

Each command prints Keras's progress bar while it trains, writes TensorBoard logs,
the model and its vocabulary to `--output`, and ends with a one-line JSON summary
(also in `OUTPUT/summary.json`). Checkpoints (`OUTPUT/backup`: weights, optimizer
state, step = data position, RNG state; every epoch and every `--checkpoint-every`
steps) let a killed run started again with the same command continue exactly where
it stopped, mid-epoch included: by default when a checkpoint exists, with `--resume`
necessarily (it fails if there is none), never with `--no-resume` (start over).

`--strategy multi_worker` runs one process per worker with `TF_CONFIG` set; every
worker runs the same command, `--batch` is the global batch, and only the chief
(worker 0) writes `OUTPUT`.
"""

import json
import os
import pathlib
import sys

from keras_albert.cli import _parse_override
from keras_albert.training.strategy import STRATEGIES

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


# === Shared options ===

def _add_training_options(parser, optimizer="adamw", learning_rate=None, batch=32, seq=128):
    group = parser.add_argument_group("training")
    group.add_argument("--output", required=True, help="directory for the model, logs, summary")
    group.add_argument("--batch", type=int, default=batch, help=f"global batch size ({batch})")
    group.add_argument("--seq", type=int, default=seq, help=f"sequence length ({seq})")
    group.add_argument("--optimizer", choices=("adam", "adamw", "lamb", "adafactor"),
                       default=optimizer, help=f"optimizer ({optimizer})")
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


def _optimizer(args, total_steps):
    from keras_albert.optimizers import create_optimizer

    learning_rate = args.learning_rate
    if learning_rate is None and args.optimizer != "adafactor":
        learning_rate = 5e-5
    return create_optimizer(
        args.optimizer,
        learning_rate,
        total_steps=total_steps if learning_rate is not None else None,
        warmup_steps=int(args.warmup * total_steps),
        weight_decay=args.weight_decay,
        gradient_accumulation_steps=args.accumulation,
        global_clipnorm=args.clip_norm or None,
    )


def _seed_everything(seed):
    """Python, NumPy, TensorFlow and Keras seeds: initial weights (heads included) and
    dropout are the same in every run, process and worker with the same --seed. First
    thing in a command: seeding resets TensorFlow's kernel cache, which tokenizer
    resources live in."""
    import keras

    keras.utils.set_random_seed(seed)


def _runtime_overrides(args):
    return {"remat": args.remat, "dtype": args.precision}


def _print_summary(summary, output, strategy=None):
    from keras_albert.training.strategy import is_chief

    if is_chief(strategy):  # under multi_worker only the chief writes OUTPUT
        path = os.path.join(output, "summary.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    print(json.dumps({key: value for key, value in summary.items() if key != "history"}))


# === Loading models ===

def rebuilt(encoder, **overrides):
    """A copy of `encoder` with runtime options changed (remat, dtype, dropout)."""
    from keras_albert.models.encoder import Encoder

    config = {**encoder.get_config(), **overrides}
    copy = Encoder.from_config(config)
    copy.set_weights(encoder.get_weights())
    return copy


def load_encoder(spec, seq_length, vocab=None, whole_model=False, **overrides):
    """`(encoder, preprocessor)` from a preset name, one of our output directories or
    `.keras` files, or anything `keras_albert.from_pretrained` reads. With
    `whole_model=True`, a `.keras` file's model is returned as saved (a task model with
    its head) instead of its encoder.

    - a preset (`albert_base`): random weights; `vocab` (a `spiece.model` or
      `vocab.txt`) gives the tokenizer and sizes the embeddings;
    - a directory written by `keras-albert pretrain/finetune/distill` (a `.keras` file
      and its vocabulary), or a `.keras` file with the vocabulary beside it;
    - a Hugging Face directory, `hf://owner/name`, a keras-hub preset directory or an
      original ALBERT TF1 checkpoint.
    """
    import keras

    import keras_albert
    from keras_albert.conversion.huggingface import tokenizer_from_directory
    from keras_albert.models.encoder import Encoder
    from keras_albert.presets import PRESETS
    from keras_albert.conversion.pretrained import _preprocessor as checked_preprocessor

    path = pathlib.Path(spec)
    keras_file = None
    if path.suffix == ".keras" and path.is_file():
        keras_file = path
    elif path.is_dir():
        candidates = sorted(path.glob("*.keras"))
        keras_file = candidates[0] if candidates else None
    if spec in PRESETS:
        if vocab is None:
            raise ValueError(f"A preset ({spec}) has no vocabulary: pass --vocab "
                             "spiece.model or vocab.txt.")
        tokenizer = tokenizer_from_directory(_vocab_dir(vocab))
        encoder = Encoder.from_preset(spec, vocabulary_size=tokenizer.vocabulary_size,
                                      **overrides)
    elif keras_file is not None:
        # compile=False: the saved optimizer is not needed (and its classes may not
        # be registered in this process yet).
        model = keras.saving.load_model(keras_file, compile=False)
        encoder = model if whole_model else rebuilt(getattr(model, "encoder", model),
                                                    **overrides)
        tokenizer = tokenizer_from_directory(_vocab_dir(vocab) if vocab else keras_file.parent)
        if tokenizer is None:
            raise ValueError(f"No spiece.model or vocab.txt beside {keras_file}; pass --vocab.")
    else:
        encoder, preprocessor = keras_albert.from_pretrained(spec, seq_length=seq_length,
                                                             **overrides)
        if preprocessor is None:
            if vocab is None:
                raise ValueError(f"{spec} has no vocabulary; pass --vocab.")
            tokenizer = tokenizer_from_directory(_vocab_dir(vocab))
        else:
            return encoder, preprocessor
    # Checks that the vocabulary fits the embeddings and caps the length at the
    # position table, as `from_pretrained` does.
    return encoder, checked_preprocessor(tokenizer, getattr(encoder, "encoder", encoder),
                                         seq_length, "fixed")


def _vocab_dir(vocab):
    """A folder holding `vocab` under the name `tokenizer_from_directory` expects."""
    import tempfile

    vocab = pathlib.Path(vocab)
    if not vocab.is_file():
        raise FileNotFoundError(f"Vocabulary file not found: {vocab}")
    if vocab.name in ("spiece.model", "vocab.txt"):
        return vocab.parent
    folder = pathlib.Path(tempfile.mkdtemp(prefix="keras_albert_vocab_"))
    name = "spiece.model" if vocab.suffix == ".model" else "vocab.txt"
    (folder / name).write_bytes(vocab.read_bytes())
    return folder


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
                        type=_parse_override,
                        help="override a preset field, e.g. --set num_layers=6")
    parser.add_argument("--steps", type=int, default=10000, help="training steps (10000)")
    parser.add_argument("--steps-per-epoch", type=int, default=1000,
                        help="steps between checkpoints and evaluations (1000)")
    parser.add_argument("--max-predictions", type=int, default=None,
                        help="masked positions per sequence (default 15%% of --seq)")
    parser.add_argument("--no-sop", action="store_true",
                        help="masked-LM only (no sentence-order prediction)")
    parser.add_argument("--eval-steps", type=int, default=20,
                        help="held-out batches evaluated before and after (20)")
    _add_training_options(parser, optimizer="adafactor", batch=64)


def run_pretrain(args):
    from keras_albert.conversion.huggingface import tokenizer_from_directory
    from keras_albert.training.corpus import iter_documents
    from keras_albert.training.pretrain import compile_pretrainer, epoch_plan, new_pretrainer, pretrain
    from keras_albert.training.pretraining_data import pretraining_dataset
    from keras_albert.training.strategy import DistributionPlan, resolve_strategy
    from keras_albert.training.vocab import train_sentencepiece

    strategy = resolve_strategy(args.strategy)  # first (see run_finetune)
    _seed_everything(args.seed)
    overrides = dict(args.set)
    reserved = {"seed", "remat", "dtype", "vocabulary_size"} & set(overrides)
    if reserved:
        raise ValueError(f"Set {sorted(reserved)} with their own options (--seed, --remat, "
                         "--precision, --vocab-size), not --set.")
    os.makedirs(args.output, exist_ok=True)
    if args.vocab:
        tokenizer = tokenizer_from_directory(_vocab_dir(args.vocab))
    else:
        from keras_albert.tokenizers import SentencePieceTokenizer

        lines = (line for document in iter_documents(args.corpus) for line in document)
        tokenizer = SentencePieceTokenizer(train_sentencepiece(lines, args.vocab_size))

    def documents(held_out):
        def read():
            for index, document in enumerate(iter_documents(args.corpus)):
                if (index % 20 == 19) == held_out:
                    yield document
        return read

    plan = DistributionPlan(strategy, args.batch, args.steps_per_execution)
    batch = plan.global_batch
    max_predictions = args.max_predictions or max(1, round(args.seq * 0.15))
    data = dict(tokenizer=tokenizer, seq_length=args.seq, batch_size=batch,
                max_predictions=max_predictions, sop=not args.no_sop, repeat=True)

    def train():
        # A fresh pipeline: `pretrain` replays one for every iterator Keras opens, from
        # the current global step, so every process and worker sees the same batches.
        return pretraining_dataset(documents(False), seed=args.seed, **data)

    train()  # checks the corpus before anything is built
    try:
        held_out = pretraining_dataset(documents(True), seed=args.seed + 1, **data)
    except ValueError:  # a corpus of fewer than 20 documents holds nothing out
        print("keras-albert pretrain: the corpus is too small to hold out documents; "
              "no held-out evaluation.", file=sys.stderr)
        held_out = None
    epochs, steps_per_epoch = epoch_plan(args.steps, args.steps_per_epoch)
    with strategy.scope():
        model = new_pretrainer(args.preset, tokenizer.vocabulary_size,
                               sentence_order=not args.no_sop, seed=args.seed,
                               **{**overrides, **_runtime_overrides(args)})
        compile_pretrainer(model, _optimizer(args, epochs * steps_per_epoch),
                           jit_compile=args.xla, steps_per_execution=plan.steps_per_execution)
    summary = pretrain(
        model, train, args.output, epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch,
        eval_dataset=held_out, eval_steps=args.eval_steps, tokenizer=tokenizer,
        tokens_per_batch=batch * args.seq, verbose=0 if args.quiet else "auto",
        resume=args.resume, checkpoint_every=args.checkpoint_every,
        run={"global_batch": batch, "seed": args.seed, "seq": args.seq},
    )
    _print_summary(summary, args.output, strategy)
    return 0


# === finetune ===

def _add_task_data_arguments(parser):
    data = parser.add_argument_group("data")
    data.add_argument("--train", required=True,
                      help="training data: a .tsv/.csv/.jsonl file (.gz ok) or tfds:NAME "
                      "(e.g. tfds:glue/sst2, needs network)")
    data.add_argument("--eval", help="evaluation data (file or tfds:NAME:split)")
    data.add_argument("--holdout", type=float, default=None,
                      help="hold out this fraction of --train for evaluation instead")
    data.add_argument("--task", choices=("classification", "regression", "multilabel"),
                      help="default: inferred from the labels")
    data.add_argument("--text-columns", nargs="+", help="one or two text columns")
    data.add_argument("--label-column", help="the label column")
    data.add_argument("--limit", type=int,
                      help="train on a random sample of this many rows (seeded by --seed)")
    data.add_argument("--replace-br", action="store_true",
                      help="replace '<br />' by a space in texts (IMDB)")


def _read_task(spec, args, split="train", like=None):
    """A `TaskData` from a file or `tfds:NAME[:SPLIT]`; `like` (the training data) fixes
    the task and the label ids, so evaluation labels mean what training labels mean."""
    from keras_albert.training.task_data import TaskData, load_task_file, load_tfds

    task = like.task if like is not None else args.task
    label_names = like.label_names if like is not None else None
    limit = args.limit if split == "train" else None
    if spec.startswith("tfds:"):
        name, _, tfds_split = spec[5:].partition(":")
        tfds_split = tfds_split or split
        if limit:
            tfds_split = f"{tfds_split}[:{limit}]"
        data = load_tfds(name, tfds_split, text_keys=args.text_columns,
                         label_key=args.label_column or "label")
        if args.replace_br:
            data = TaskData(tuple([_no_br(t) for t in column] for column in data.texts),
                            data.labels, data.task, data.label_names)
        return data
    data = load_task_file(spec, text_columns=args.text_columns, label_column=args.label_column,
                          task=task, label_names=label_names,
                          transform=_no_br if args.replace_br else None)
    if limit and limit < len(data):
        # A random sample, not the first rows: task files are often sorted by label.
        import numpy as np

        rows = np.random.default_rng(args.seed).permutation(len(data))[:limit]
        data = data.subset(np.sort(rows))
    return data


def _no_br(text):
    return text.replace("<br />", " ")


def _task_splits(args):
    train = _read_task(args.train, args)
    evaluation = None
    if args.eval:
        evaluation = _read_task(args.eval, args, split="test", like=train)
    elif args.holdout:
        train, evaluation = train.split(args.holdout, seed=args.seed)
    return train, evaluation


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
    _add_task_data_arguments(parser)
    _add_training_options(parser, optimizer="adamw", learning_rate=5e-5)


def run_finetune(args):
    from keras_albert.training.finetune import build_task_model, finetune
    from keras_albert.training.strategy import resolve_strategy

    # The strategy first: MultiWorkerMirroredStrategy configures collective ops, which
    # must happen before TensorFlow runs anything else.
    strategy = resolve_strategy(args.strategy)
    _seed_everything(args.seed)
    train, evaluation = _task_splits(args)
    with strategy.scope():
        encoder, preprocessor = load_encoder(args.model, args.seq, vocab=args.vocab,
                                             **_runtime_overrides(args))
        num_classes = train.num_classes
        model = build_task_model(encoder, train.task, num_classes, dropout=args.dropout,
                                 pooling=args.pooling)
        summary = finetune(
            model, preprocessor, train, args.output,
            lambda total_steps: _optimizer(args, total_steps), epochs=args.epochs,
            batch_size=args.batch, eval_data=evaluation, seed=args.seed,
            max_steps=args.max_steps, verbose=0 if args.quiet else "auto",
            jit_compile=args.xla, resume=args.resume, checkpoint_every=args.checkpoint_every,
            steps_per_execution=args.steps_per_execution,
        )
    _print_summary(summary, args.output, strategy)
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
    _add_task_data_arguments(parser)
    _add_training_options(parser, optimizer="adamw", learning_rate=1e-4)


def run_distill(args):
    from keras_albert.training.distill import distill
    from keras_albert.training.strategy import resolve_strategy

    strategy = resolve_strategy(args.strategy)  # first (see run_finetune)
    _seed_everything(args.seed)
    train, evaluation = _task_splits(args)
    with strategy.scope():
        summary = distill(
            args.teacher, train, args.output, lambda total_steps: _optimizer(args, total_steps),
            student_layers=args.student_layers, teacher_layers=args.teacher_layers,
            temperature=args.temperature, alpha_ce=args.alpha_ce, alpha_mlm=args.alpha_mlm,
            alpha_cos=args.alpha_cos, seq_length=args.seq, epochs=args.epochs,
            batch_size=args.batch, eval_data=evaluation, seed=args.seed,
            max_steps=args.max_steps, resume=args.resume,
            checkpoint_every=args.checkpoint_every,
            steps_per_execution=args.steps_per_execution, jit_compile=args.xla,
            verbose=0 if args.quiet else "auto", **_runtime_overrides(args))
    _print_summary(summary, args.output, strategy)
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


def run_demo_command(args):
    from keras_albert.training.demo import run_demo

    options = {}
    if args.pretrain_steps is not None:
        options["pretrain_steps"] = args.pretrain_steps
    if args.distill_steps is not None:
        options["distill_steps"] = args.distill_steps
    summary = run_demo(args.output, corpus=args.corpus, quick=args.quick, seed=args.seed,
                       strategy=args.strategy, verbose=0 if args.quiet else "auto", **options)
    print(json.dumps({key: summary[key] for key in ("teacher", "student", "total_seconds")}))
    return 0


COMMANDS = {
    "pretrain": ("pretrain an encoder with masked-LM + sentence-order prediction",
                 add_pretrain_arguments, run_pretrain),
    "finetune": ("fine-tune an encoder on a classification / regression / multi-label task",
                 add_finetune_arguments, run_finetune),
    "distill": ("distill a fine-tuned classifier into a DistilBERT-style student",
                add_distill_arguments, run_distill),
    "demo": ("the whole pipeline offline: vocabulary, pretraining, distillation, export, "
             "serving", add_demo_arguments, run_demo_command),
}
