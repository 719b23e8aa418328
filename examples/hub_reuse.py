"""Reuse an exported encoder + preprocessor (TF-Hub style) in your own Keras 3 and
tf_keras models, and fine-tune both on SST-2 sentences.

The encoder and the preprocessor are the two SavedModels `keras-albert export MODEL
OUT --format hub` writes (`OUT/encoder`, `OUT/preprocessor`); their contract is the
docstring of `keras_albert/export/hub.py`. This script

1. exports them first when given a model (`--model`: a preset with `--vocab`, a
   `keras-albert` run directory or `.keras` file, a Hugging Face directory such as
   the shared MiniLM checkpoint), or takes existing exports (`--encoder-dir`,
   `--preprocessor-dir`);
2. Keras 3 (in this process, which exported with Keras 3 too): the preprocessor
   SavedModel tokenizes and packs in the `tf.data` pipeline,
   `keras_albert.export.HubEncoderLayer` (a `keras.layers.TFSMLayer`) wraps the
   encoder, a dropout + dense head on `pooled_output`, Adam, `model.fit`;
3. tf_keras (in a child process: tf_keras and Keras 3 are separate Keras versions,
   and `tensorflow_hub` needs tf_keras): a model on raw strings,
   `hub.KerasLayer(preprocessor.tokenize)` -> `hub.KerasLayer(
   preprocessor.bert_pack_inputs)` -> `hub.KerasLayer(encoder_dir, trainable=True)`
   -> the same head, Adam, `model.fit`. The child imports no keras_albert: the
   SavedModels are all it needs;
4. prints, for each framework, the loss on training rows and the loss and accuracy
   on held-out SST-2 rows (GLUE's dev split) before and after fine-tuning, and how
   many of the encoder's weights fine-tuning changed.

Run from the repository root:

    # CI size: bert_tiny (random weights) with the real WordPiece vocabulary, few steps
    python examples/hub_reuse.py --reduced

    # the real pretrained MiniLM checkpoint, exported first (docs/hub_reuse.md has
    # this run's output: 84% on SST-2 dev after 300 steps, ~11 min per framework here)
    python examples/hub_reuse.py \
        --model ../shared/data/models/minilm-l6-h384-uncased --steps 300 --batch 16

    # exports you already have (keras-albert export sst2_run/ hub --format hub)
    python examples/hub_reuse.py --encoder-dir hub/encoder \
        --preprocessor-dir hub/preprocessor --framework tf_keras

The last line of standard output is one JSON object (the settings, then a
`keras3` and a `tf_keras` entry with `train_loss_before`, `train_loss_after`,
`eval_accuracy_before`, `eval_accuracy_after`, `encoder_weights_changed`, ...), for
scripts and CI (`tests/test_reuse_and_worker_examples.py`). The tf_keras part needs
`pip install tf_keras tensorflow_hub "setuptools<81"` (tensorflow_hub imports
`pkg_resources`).
"""

import argparse
import csv
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

# Only the standard library at the top: the tf_keras child must not load Keras 3.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

KEYS = ("input_word_ids", "input_mask", "input_type_ids")
FRAMEWORKS = ("keras3", "tf_keras")
MINILM = "models/minilm-l6-h384-uncased"
# --reduced: sizes for CI. A random bert_tiny learns the 64 training rows quickly at
# this learning rate; the numbers only need to show that training happens.
REDUCED = dict(model="bert_tiny", train_rows=64, eval_rows=64, steps=24, batch=16, seq=32,
               learning_rate=1e-3)
FULL = dict(train_rows=10000, eval_rows=None, steps=300, batch=32, seq=64,
            learning_rate=5e-5)


def default_data_dir():
    configured = os.environ.get("KERAS_ALBERT_DATA")
    if configured:
        return pathlib.Path(configured)
    return pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def read_sst2(path):
    """`(sentences, labels)` of a GLUE SST-2 TSV file (header `sentence label`)."""
    sentences, labels = [], []
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            sentences.append(row["sentence"])
            labels.append(int(row["label"]))
    return sentences, labels


def sst2_rows(data_dir, train_rows, eval_rows, seed):
    """A seeded random sample of the training split (its file is not shuffled) and
    the first `eval_rows` of the dev split, which training never sees."""
    import random

    sentences, labels = read_sst2(data_dir / "sst2" / "train.tsv")
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    order = order[:train_rows]
    dev_sentences, dev_labels = read_sst2(data_dir / "sst2" / "dev.tsv")
    return {
        "train_texts": [sentences[i] for i in order],
        "train_labels": [labels[i] for i in order],
        "eval_texts": dev_sentences[:eval_rows],
        "eval_labels": dev_labels[:eval_rows],
    }


def export(model, output_dir, vocab=None, seq=None, seed=0):
    """`keras-albert export MODEL OUTPUT --format hub`, in this process; returns
    `(encoder_dir, preprocessor_dir)`."""
    import keras

    from keras_albert.cli import main as keras_albert_cli

    keras.utils.set_random_seed(seed)  # a preset's random weights, the same every run
    argv = ["export", str(model), str(output_dir), "--format", "hub"]
    if vocab:
        argv += ["--vocab", str(vocab)]
    if seq:
        argv += ["--seq", str(seq)]
    code = keras_albert_cli(argv)
    if code:
        raise SystemExit(f"keras-albert {' '.join(argv)} failed ({code}).")
    return os.path.join(output_dir, "encoder"), os.path.join(output_dir, "preprocessor")


def _chunks(steps):
    """Training runs as up to 5 Keras "epochs" of equal length, so the history shows
    the loss going down (each entry is the mean training loss of one chunk)."""
    return next(count for count in (5, 4, 3, 2, 1) if steps % count == 0)


def _weights(layer):
    return [weight.numpy().copy() for weight in layer.trainable_weights]


def _compare(before, after):
    import numpy as np

    changes = [float(np.abs(old - new).max()) for old, new in zip(before, after)]
    return {
        "encoder_weights": len(before),
        "encoder_weights_changed": sum(change > 0 for change in changes),
        "max_encoder_weight_change": max(changes, default=0.0),
    }


def _report(framework, model, encoder, fit, train_eval, held_out, config, optimizer):
    """Evaluates, fine-tunes with `fit(steps_per_epoch, epochs)`, evaluates again."""
    started = time.perf_counter()
    train_before = model.evaluate(train_eval, verbose=0, return_dict=True)
    eval_before = model.evaluate(held_out, verbose=0, return_dict=True)
    weights_before = _weights(encoder)
    chunks = _chunks(config["steps"])
    history = fit(steps_per_epoch=config["steps"] // chunks, epochs=chunks)
    train_after = model.evaluate(train_eval, verbose=0, return_dict=True)
    eval_after = model.evaluate(held_out, verbose=0, return_dict=True)
    result = {
        "framework": framework,
        "optimizer": optimizer,
        "train_loss_before": train_before["loss"],
        "train_loss_after": train_after["loss"],
        "eval_loss_before": eval_before["loss"],
        "eval_loss_after": eval_after["loss"],
        "eval_accuracy_before": eval_before["accuracy"],
        "eval_accuracy_after": eval_after["accuracy"],
        "fit_loss_per_chunk": [float(value) for value in history.history["loss"]],
        **_compare(weights_before, _weights(encoder)),
        "seconds": round(time.perf_counter() - started, 1),
    }
    result["loss_fell"] = result["train_loss_after"] < result["train_loss_before"]
    result["weights_changed"] = result["encoder_weights_changed"] > 0
    return result


def _monitor_rows(config):
    """Training rows whose loss is measured before and after (at most 256, dropout off)."""
    rows = min(256, len(config["train_texts"]))
    return config["train_texts"][:rows], config["train_labels"][:rows]


def fine_tune_keras3(config):
    """Keras 3: preprocessing in tf.data, `HubEncoderLayer`, `model.fit`."""
    import keras
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)

    from keras_albert.export import HubEncoderLayer

    keras.utils.set_random_seed(config["seed"])
    preprocessor = tf.saved_model.load(config["preprocessor_dir"])
    seq, batch = config["seq"], config["batch"]

    def pack(texts, labels):
        # Runs inside tf.data: the SavedModel's tokenize / bert_pack_inputs graphs.
        tokens = preprocessor.tokenize(texts)
        return preprocessor.bert_pack_inputs([tokens], seq_length=seq), labels

    def dataset(texts, labels, train=False):
        data = tf.data.Dataset.from_tensor_slices((texts, tf.constant(labels, tf.int32)))
        if train:
            data = data.shuffle(len(texts), seed=config["seed"]).repeat()
        return data.batch(batch).map(pack, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)

    # HubEncoderLayer = TFSMLayer on the "serve" / "call_training" endpoints, with
    # Keras weight names that Adam's slot names accept (see keras_reuse.py).
    encoder = HubEncoderLayer(config["encoder_dir"], name="hub_encoder")
    inputs = {key: keras.Input((None,), dtype="int32", name=key) for key in KEYS}
    pooled = encoder(inputs)["pooled_output"]
    logits = keras.layers.Dense(2, name="classifier")(keras.layers.Dropout(0.1)(pooled))
    model = keras.Model(inputs, logits)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    train = dataset(config["train_texts"], config["train_labels"], train=True)

    def fit(steps_per_epoch, epochs):
        # shuffle=False: the dataset shuffles itself (Keras would only warn).
        return model.fit(train, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=2,
                         shuffle=False)

    return _report("keras3", model, encoder, fit, dataset(*_monitor_rows(config)),
                   dataset(config["eval_texts"], config["eval_labels"]), config,
                   optimizer=f"keras.optimizers.{type(model.optimizer).__name__}")


def fine_tune_tf_keras(config):
    """tf_keras + tensorflow_hub: a model on raw strings, `hub.KerasLayer`s throughout."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)
    import tf_keras
    import tensorflow_hub as hub

    tf_keras.utils.set_random_seed(config["seed"])
    preprocessor = hub.load(config["preprocessor_dir"])
    text = tf_keras.Input(shape=(), dtype=tf.string, name="text")
    # The TF Hub BERT recipe: tokenize, then pack to the length this model wants.
    tokens = hub.KerasLayer(preprocessor.tokenize, name="tokenize")(text)
    packed = hub.KerasLayer(preprocessor.bert_pack_inputs, name="pack",
                            arguments=dict(seq_length=config["seq"]))([tokens])
    encoder = hub.KerasLayer(config["encoder_dir"], trainable=True, name="hub_encoder")
    pooled = encoder(packed)["pooled_output"]
    logits = tf_keras.layers.Dense(2, name="classifier")(tf_keras.layers.Dropout(0.1)(pooled))
    model = tf_keras.Model(text, logits)
    model.compile(optimizer=tf_keras.optimizers.Adam(config["learning_rate"]),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])

    def dataset(texts, labels, train=False):
        data = tf.data.Dataset.from_tensor_slices((texts, tf.constant(labels, tf.int32)))
        if train:
            data = data.shuffle(len(texts), seed=config["seed"]).repeat()
        return data.batch(config["batch"]).prefetch(2)

    train = dataset(config["train_texts"], config["train_labels"], train=True)

    def fit(steps_per_epoch, epochs):
        return model.fit(train, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=2)

    optimizer = type(model.optimizer)
    result = _report("tf_keras", model, encoder, fit, dataset(*_monitor_rows(config)),
                     dataset(config["eval_texts"], config["eval_labels"]), config,
                     optimizer=f"{optimizer.__module__}.{optimizer.__name__}")
    # The SavedModels were all this process needed.
    result["keras_albert_loaded"] = "keras_albert" in sys.modules
    return result


def run_in_child(framework, config, workdir):
    """Runs `framework` in a fresh interpreter (this file with --child); its result."""
    config_path = pathlib.Path(workdir) / f"{framework}_config.json"
    result_path = pathlib.Path(workdir) / f"{framework}_result.json"
    config_path.write_text(json.dumps(config))
    env = dict(os.environ)
    # tf_keras is imported by name; TF_USE_LEGACY_KERAS would only redirect `tf.keras`,
    # and an inherited value must not change what the child's Keras 3 code means.
    env.pop("TF_USE_LEGACY_KERAS", None)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", framework,
                           "--child-config", str(config_path), "--child-result",
                           str(result_path)], env=env)
    if done.returncode != 0:
        return {"framework": framework, "error": f"child process exited with {done.returncode}"}
    return json.loads(result_path.read_text())


def _print_result(result):
    name = result["framework"]
    if "error" in result:
        print(f"{name}: FAILED ({result['error']})")
        return
    print(f"{name} ({result['optimizer']}, {result['seconds']} s): "
          f"train loss {result['train_loss_before']:.4f} -> {result['train_loss_after']:.4f}; "
          f"held-out loss {result['eval_loss_before']:.4f} -> {result['eval_loss_after']:.4f}, "
          f"accuracy {result['eval_accuracy_before']:.4f} -> "
          f"{result['eval_accuracy_after']:.4f}; encoder weights changed: "
          f"{result['encoder_weights_changed']}/{result['encoder_weights']} "
          f"(max |change| {result['max_encoder_weight_change']:.3g})")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group("encoder source (default: the shared MiniLM checkpoint)")
    source.add_argument("--model", help="export this first: a preset (with --vocab), a "
                        "keras-albert run directory or .keras file, a Hugging Face directory")
    source.add_argument("--vocab", help="vocab.txt or spiece.model (for a preset)")
    source.add_argument("--export-dir", help="where --model is exported (encoder/ and "
                        "preprocessor/ inside; default: a temporary directory)")
    source.add_argument("--encoder-dir", help="an existing encoder export")
    source.add_argument("--preprocessor-dir", help="an existing preprocessor export")
    parser.add_argument("--framework", choices=FRAMEWORKS + ("both",), default="both")
    parser.add_argument("--reduced", action="store_true",
                        help="CI size: bert_tiny with the real vocabulary, "
                        + ", ".join(f"{k}={v}" for k, v in REDUCED.items() if k != "model"))
    parser.add_argument("--train-rows", type=int, help=f"SST-2 training rows, a seeded sample "
                        f"({FULL['train_rows']})")
    parser.add_argument("--eval-rows", type=int, help="held-out rows from SST-2 dev (all 872)")
    parser.add_argument("--steps", type=int, help=f"training steps ({FULL['steps']})")
    parser.add_argument("--batch", type=int, help=f"batch size ({FULL['batch']})")
    parser.add_argument("--seq", type=int, help=f"sequence length ({FULL['seq']})")
    parser.add_argument("--learning-rate", type=float,
                        help=f"Adam's learning rate ({FULL['learning_rate']})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=pathlib.Path, default=None,
                        help="the shared data folder (default: $KERAS_ALBERT_DATA or "
                        "../shared/data beside the repository)")
    # Internal: how the parent runs one framework in a fresh interpreter.
    parser.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--child-config", help=argparse.SUPPRESS)
    parser.add_argument("--child-result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    defaults = REDUCED if args.reduced else FULL
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.data_dir = args.data_dir or default_data_dir()
    if (args.encoder_dir is None) != (args.preprocessor_dir is None):
        parser.error("--encoder-dir and --preprocessor-dir go together")
    if args.encoder_dir and args.model:
        parser.error("give either --model or --encoder-dir/--preprocessor-dir")
    if not args.encoder_dir and not args.model:
        args.model = str(args.data_dir / MINILM)
    if args.model == "bert_tiny" and args.vocab is None and args.reduced:
        args.vocab = str(args.data_dir / "vocab" / "bert_uncased_vocab.txt")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        config = json.loads(pathlib.Path(args.child_config).read_text())
        run = fine_tune_keras3 if args.child == "keras3" else fine_tune_tf_keras
        pathlib.Path(args.child_result).write_text(json.dumps(run(config)))
        return 0

    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="hub_reuse_")
    encoder_dir, preprocessor_dir = args.encoder_dir, args.preprocessor_dir
    if args.model:
        export_dir = args.export_dir or os.path.join(workdir, "export")
        print(f"exporting {args.model} to {export_dir} (keras-albert export --format hub)")
        encoder_dir, preprocessor_dir = export(args.model, export_dir, args.vocab, args.seq,
                                               args.seed)
    config = {
        "encoder_dir": os.path.abspath(encoder_dir),
        "preprocessor_dir": os.path.abspath(preprocessor_dir),
        "steps": args.steps, "batch": args.batch, "seq": args.seq,
        "learning_rate": args.learning_rate, "seed": args.seed,
        **sst2_rows(args.data_dir, args.train_rows, args.eval_rows, args.seed),
    }
    settings = {key: value for key, value in config.items()
                if not key.startswith(("train_", "eval_"))}
    settings.update(model=args.model, train_rows=len(config["train_texts"]),
                    eval_rows=len(config["eval_texts"]))
    print("settings: " + json.dumps(settings))
    frameworks = FRAMEWORKS if args.framework == "both" else (args.framework,)
    results = {}
    for framework in frameworks:
        print(f"--- {framework} ---", flush=True)
        if framework == "keras3":
            results[framework] = fine_tune_keras3(config)  # Keras 3 is this process's Keras
        else:
            results[framework] = run_in_child(framework, config, workdir)
    print("--- results ---")
    for result in results.values():
        _print_result(result)
    summary = {**settings, **results, "total_seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(summary))
    return 1 if any("error" in result for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
