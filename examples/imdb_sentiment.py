"""Fine-tune a pretrained encoder for IMDB sentiment (positive / negative reviews).

The classic recipe: an ALBERT encoder, a classifier on its pooled output, 3 epochs of
`model.fit` with Adam with decoupled weight decay 0.01 (warm-up, then linear decay),
reviews cut to 256 word pieces ([CLS] and [SEP] included). Published: albert-base-v2
reaches about 93% on the IMDB test set this way (not measured here; docs/imdb.md has
what we measured with the MiniLM checkpoint).

    # online, ALBERT weights from a Hugging Face or original TF1 directory:
    python examples/imdb_sentiment.py --model albert-base-v2/ --data tfds
    # offline, the labelled training file (10% held out for evaluation):
    python examples/imdb_sentiment.py --model albert_base_tf1/ \\
        --data ../shared/data/imdb/train.tsv.gz
    # what docs/imdb.md measured (the default MiniLM, a sample, 1 epoch):
    python examples/imdb_sentiment.py --data ../shared/data/imdb/train.tsv.gz \\
        --train-rows 3000 --held-out 2000 --epochs 1
    # CI: 16 steps on 128 reviews at 64 word pieces, 64 held out; about 35 s
    python examples/imdb_sentiment.py --reduced --output /tmp/imdb_ci

`--model` takes a Hugging Face directory (ALBERT, BERT, DistilBERT), an original
google-research/albert TF1 checkpoint, `hf://owner/name` (online), or a preset name
with `--vocab`. It defaults to the MiniLM checkpoint in the shared data folder
($KERAS_ALBERT_DATA or ../shared/data), the only real weights on the development
machines. `--data` is `tfds` (`imdb_reviews`: train on the train split, evaluate on
the test split), a labelled TSV/CSV/JSONL file (evaluation on `--held-out` reviews
taken out of it) or `auto` (TFDS when it answers, else the shared data file).

OUTPUT gets TensorBoard logs (`logs/`), the model (`model.keras`) and its vocabulary,
`summary.json` and `rows.json` (which file rows trained and which evaluated). The
last line printed is a JSON summary with the held-out accuracy.
"""

import argparse
import json
import os
import pathlib
import re
import sys
import time
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `python examples/imdb_sentiment.py` from a checkout without `pip install -e .`.
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

# The library (and TensorFlow) is imported in the functions that use it, so that a
# wrong argument is reported in a second rather than after TensorFlow has loaded.

# CI mode: 8 steps an epoch on a sample of the file, 2 epochs so that the loss can fall.
REDUCED = {"train_rows": 128, "held_out": 64, "seq": 64, "epochs": 2, "batch": 16}
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def shared_data_dir():
    configured = os.environ.get("KERAS_ALBERT_DATA")
    if configured:
        return pathlib.Path(configured)
    return pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def clean_review(text):
    """IMDB keeps the HTML line breaks of the original pages (`<br /><br />`)."""
    return " ".join(_LINE_BREAK.sub(" ", text).split())


def split_rows(num_rows, held_out, train_rows=None, seed=0):
    """`(train, held_out)` row indices, disjoint, from one seeded permutation.

    `held_out` is a fraction (< 1) or a count. The file is sorted by label, so both
    parts are random samples rather than leading rows; `train_rows` caps the training
    part (taken from what is left after holding out).
    """
    count = int(round(held_out * num_rows)) if held_out < 1 else int(held_out)
    if not 0 < count < num_rows:
        raise ValueError(f"--held-out {held_out} of {num_rows} rows leaves an empty part.")
    order = np.random.default_rng(seed).permutation(num_rows)
    evaluation, train = order[:count], order[count:]
    if train_rows is not None:
        train = train[:train_rows]
    return np.sort(train), np.sort(evaluation)


def load_reviews(args):
    """`(train, evaluation, rows)`: two `TaskData` and the row indices each came from."""
    from keras_albert.training.task_files import load_task_file

    if args.data == "auto":
        local = shared_data_dir() / "imdb" / "train.tsv.gz"
        try:
            return _load_tfds_reviews(args, timeout=5.0)
        except (ImportError, ConnectionError) as error:
            if not local.is_file():
                raise ConnectionError(f"{error} (and no local copy at {local}; pass "
                                      "--data PATH)") from None
            print(f"imdb_sentiment: TFDS unavailable ({type(error).__name__}); reading "
                  f"{local}", file=sys.stderr)
            args.data = str(local)
    if args.data == "tfds":
        return _load_tfds_reviews(args, timeout=10.0)
    # load_task_file reads .tsv.gz and finds IMDB's `text` and `label` columns itself.
    reviews = load_task_file(args.data, transform=clean_review)
    train_rows, eval_rows = split_rows(len(reviews), args.held_out or 0.1, args.train_rows,
                                       args.seed)
    rows = {"source": args.data, "train": train_rows.tolist(), "held_out": eval_rows.tolist()}
    return reviews.subset(train_rows), reviews.subset(eval_rows), rows


def _load_tfds_reviews(args, timeout):
    """TFDS `imdb_reviews`: its train split to train on, its test split to evaluate."""
    from keras_albert.training.task_records import TaskData
    from keras_albert.training.tfds_tasks import load_tfds

    def cleaned(data):
        return TaskData(([clean_review(t) for t in data.texts[0]],), data.labels,
                        data.task, data.label_names)

    train = cleaned(load_tfds("imdb_reviews", "train", timeout=timeout))
    test = cleaned(load_tfds("imdb_reviews", "test", timeout=timeout))
    rng = np.random.default_rng(args.seed)
    train_rows = np.arange(len(train))
    if args.train_rows is not None:
        train_rows = np.sort(rng.permutation(len(train))[:args.train_rows])
    eval_rows = np.arange(len(test))
    if args.held_out:  # a quicker evaluation on a sample of the test split
        count = int(round(args.held_out * len(test))) if args.held_out < 1 else int(args.held_out)
        eval_rows = np.sort(rng.permutation(len(test))[:count])
    rows = {"source": "tfds:imdb_reviews", "train": train_rows.tolist(),
            "held_out_split": "test", "held_out": eval_rows.tolist()}
    return train.subset(train_rows), test.subset(eval_rows), rows


def default_pooling(model_spec):
    """`mean` for sentence-transformers checkpoints (trained for mean-pooled embeddings;
    their pooler was not trained: SST-2 0.905 vs 0.894, docs/results.md), else the
    pooled [CLS] output that ALBERT and BERT fine-tune with."""
    return "mean" if (pathlib.Path(model_spec) / "modules.json").is_file() else "pooled"


def parse_args(argv=None):
    minilm = shared_data_dir() / "models" / "minilm-l6-h384-uncased"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default=str(minilm) if minilm.is_dir() else None,
                        help="HF directory, ALBERT TF1 checkpoint, hf://owner/name, or a "
                        "preset with --vocab")
    parser.add_argument("--vocab", help="spiece.model / vocab.txt for a preset")
    parser.add_argument("--data", default="auto",
                        help="'tfds', a labelled .tsv/.csv/.jsonl file (.gz ok), or 'auto'")
    parser.add_argument("--held-out", type=float, default=None,
                        help="evaluation reviews: a fraction (< 1) or a count; from the "
                        "file (default 0.1), or a sample of the TFDS test split (default "
                        "all of it)")
    parser.add_argument("--train-rows", type=int, help="train on a sample of this many")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training reviews")
    parser.add_argument("--batch", type=int, default=16, help="reviews per step")
    parser.add_argument("--seq", type=int, default=256, help="word pieces per review")
    parser.add_argument("--truncation", choices=("longest_first", "head_tail"),
                        default="longest_first",
                        help="cut long reviews at the end, or in the middle (head_tail: "
                        "keep the first --head-tokens and the last pieces; Sun et al. 2019)")
    parser.add_argument("--head-tokens", type=int,
                        help="with --truncation head_tail: first pieces kept (default "
                        "a quarter of --seq minus 2)")
    parser.add_argument("--learning-rate", type=float, default=5e-5,
                        help="peak rate: 6%% warm-up, then linear decay to 0")
    parser.add_argument("--weight-decay", type=float, default=0.01,
                        help="AdamW's decoupled decay, not on LayerNorm and biases")
    parser.add_argument("--pooling", choices=("pooled", "mean", "first"),
                        help="default: mean for sentence-transformers checkpoints, else "
                        "pooled")
    parser.add_argument("--seed", type=int, default=0, help="sampling, head, dropout")
    parser.add_argument("--output", default="imdb_sentiment",
                        help="model, vocabulary, logs/, summary.json, rows.json")
    parser.add_argument("--reduced", action="store_true",
                        help=f"CI mode: {REDUCED}, no checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run in --output (else it is refused)")
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("--model is required (no MiniLM checkpoint in the shared data folder)")
    if args.reduced:
        for key, value in REDUCED.items():
            setattr(args, key, value)
        local = shared_data_dir() / "imdb" / "train.tsv.gz"
        if args.data == "auto" and local.is_file():  # CI must not depend on the network
            args.data = str(local)
    if args.head_tokens is not None and not (
            args.truncation == "head_tail" and 0 <= args.head_tokens <= args.seq - 2):
        parser.error(f"--head-tokens needs --truncation head_tail and a value in "
                     f"[0, {args.seq - 2}] (--seq minus 2)")
    if args.data not in ("auto", "tfds") and not os.path.isfile(args.data):
        parser.error(f"--data {args.data}: no such file (pass 'tfds' or a labelled "
                     ".tsv/.csv/.jsonl file such as ../shared/data/imdb/train.tsv.gz)")
    return args


def main(argv=None):
    started = time.perf_counter()
    args = parse_args(argv)
    import keras

    # With mean or first-token pooling the encoder's pooler is unused; Keras says so.
    warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['pooler")

    from keras_albert.metrics import evaluate_predictions
    from keras_albert.optimizers import create_optimizer
    from keras_albert import load
    from keras_albert.models.task_kinds import task_model
    from keras_albert.training.finetune import finetune, predict_task

    keras.utils.set_random_seed(args.seed)  # head initialisation, dropout, shuffling
    try:
        train, evaluation, rows = load_reviews(args)
    except (ImportError, ConnectionError) as error:
        raise SystemExit(f"imdb_sentiment: {error} Here: --data PATH, e.g. "
                         f"{shared_data_dir() / 'imdb' / 'train.tsv.gz'}") from None
    print(f"imdb_sentiment: {len(train)} training and {len(evaluation)} held-out reviews "
          f"from {rows['source']}", file=sys.stderr)

    encoder, preprocessor = load(args.model, vocab=args.vocab, seq_length=args.seq)
    if args.truncation != "longest_first":
        preprocessor = preprocessor.with_truncation(args.truncation, args.head_tokens)
    pooling = args.pooling or default_pooling(args.model)
    classifier = task_model(encoder, "classification", num_classes=2, pooling=pooling)

    def adamw(total_steps):  # 6% warm-up then linear decay to 0, clipped as BERT
        return create_optimizer("adamw", args.learning_rate, total_steps=total_steps,
                                warmup_steps=int(0.06 * total_steps),
                                weight_decay=args.weight_decay, global_clipnorm=1.0)

    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "rows.json"), "w", encoding="utf-8") as handle:
        json.dump(rows, handle)
    # The library's pipeline: length-bucketed batches, progress bar, TensorBoard logs in
    # OUTPUT/logs, checkpoints a killed run resumes from (not in the quick CI mode).
    # Evaluation is done once below rather than by fit after every epoch.
    summary = finetune(classifier, preprocessor, train, args.output, adamw,
                       epochs=args.epochs, batch_size=args.batch, seed=args.seed,
                       resume=False if args.reduced else "auto",
                       overwrite=args.overwrite,
                       verbose=0 if args.quiet else "auto")
    logits = predict_task(classifier, evaluation, preprocessor, batch_size=2 * args.batch)
    metrics = evaluate_predictions("classification", logits, evaluation.labels)
    result = {
        "accuracy": round(metrics["accuracy"], 4),
        "f1": round(metrics["f1"], 4),
        "mcc": round(metrics["mcc"], 4),
        "examples": len(evaluation),
        "train_examples": len(train),
        "epochs": args.epochs,
        "steps": summary["steps"],
        "seq": preprocessor.seq_length,
        "truncation": preprocessor.truncation,
        "head_tokens": preprocessor.head_tokens,
        "batch": args.batch,
        "pooling": pooling,
        "model": args.model,
        "data": rows["source"],
        "loss": [round(value, 4) for value in summary["history"]["loss"]],
        "train_seconds": summary["train_seconds"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    with open(os.path.join(args.output, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump({**summary, "held_out": result}, handle, indent=2)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
