"""`keras-albert demo`: the whole pipeline, offline, in minutes on a laptop CPU.

1. Corpus: text the Python installation ships (pydoc topics and standard-library
   docstrings), or `--corpus PATH` (one sentence a line, blank lines between
   documents; `.gz` is fine). One document in ten is held out for evaluation.
2. A SentencePiece vocabulary with ALBERT's special tokens, trained on it.
3. A small ALBERT (factorized embeddings, all layers shared) pretrained with masked-LM
   + sentence-order prediction, AdaFactor and gradient checkpointing (`remat="full"`).
4. A DistilBERT-style student with half the layers (no token types, no pooler),
   initialised from the teacher and distilled on the same masked-LM data.
5. Both exported as SavedModels (raw text in), reloaded in a fresh Python process
   that imports only TensorFlow and tensorflow-text, and run on a few sentences;
   the served outputs are checked against the Keras models'.
6. A summary table (parameters, peak memory, tokens/s, MLM and SOP accuracy before
   and after) and `summary.json` in the output directory.

Run again into the same directory, the demo replaces its `teacher/` and `student/`
runs and adds a new version of each export.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

DEMO_SENTENCES = [
    "A list comprehension builds a new list from an iterable.",
    "The dictionary maps each key to a value.",
    "An exception is raised when the file cannot be opened.",
    "The function returns None if no argument is given.",
]

# The demo's teacher: ALBERT-style (E < H, one shared group), small enough to train
# in minutes on two CPU cores.
DEMO_TEACHER = dict(
    hidden_dim=256, num_layers=6, num_heads=4, intermediate_dim=1024, embedding_dim=64,
    sharing="all", max_sequence_length=128, dropout=0.0,
)
# Sizes of the full demo (minutes) and of `quick=True` (about a minute, for tests).
FULL = dict(vocabulary_size=8000, seq_length=64, batch_size=32, pretrain_steps=400,
            distill_steps=150, eval_steps=10, max_documents=None, teacher=DEMO_TEACHER)
QUICK = dict(vocabulary_size=1000, seq_length=32, batch_size=16, pretrain_steps=6,
             distill_steps=4, eval_steps=2, max_documents=400,
             teacher=dict(DEMO_TEACHER, hidden_dim=64, num_layers=4, intermediate_dim=128,
                          embedding_dim=32))


def _split_documents(documents, holdout_every=10, max_documents=None):
    train, held_out = [], []
    for index, document in enumerate(documents):
        if max_documents is not None and index >= max_documents:
            break
        (held_out if index % holdout_every == holdout_every - 1 else train).append(document)
    return train, held_out


def _serve_in_fresh_process(export_dirs, sentences):
    """Loads each export with tensorflow + tensorflow_text only; returns their outputs."""
    script = (
        "import json, sys\n"
        "import numpy as np, tensorflow as tf, tensorflow_text  # noqa: F401\n"
        "assert 'keras_albert' not in sys.modules\n"
        "dirs, sentences, out = json.loads(sys.argv[1])\n"
        "results = {}\n"
        "for name, path in dirs.items():\n"
        "    served = tf.saved_model.load(path).signatures['serving_default']\n"
        "    outputs = served(text=tf.constant(sentences))\n"
        "    results[name] = {k: v.numpy() for k, v in outputs.items()}\n"
        "    assert 'keras_albert' not in sys.modules\n"
        "np.savez(out, **{f'{n}/{k}': v for n, o in results.items() for k, v in o.items()})\n"
    )
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "served.npz")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-c", script, json.dumps([export_dirs, sentences, out])],
            env=env, cwd=scratch, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError("Serving the exports from a fresh process failed:\n"
                               + result.stderr[-2000:])
        with np.load(out) as arrays:
            return {key: arrays[key] for key in arrays.files}


def _mean_pooled(sequence_output, mask):
    mask = mask[..., None].astype("float32")
    pooled = (sequence_output * mask).sum(1) / np.maximum(mask.sum(1), 1.0)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def run_demo(output_dir="keras_albert_demo", corpus=None, quick=False, seed=0,
             strategy="auto", verbose="auto", log=print, **sizes):
    """Runs the demo pipeline (see the module docstring); returns the summary dict.

    `quick=True` shrinks everything (vocabulary, model, steps) so the pipeline runs
    end to end in about a minute: that is what the tests run. `sizes` override
    single entries of `FULL` / `QUICK` (e.g. `pretrain_steps=1000`).
    """
    unknown = set(sizes) - set(FULL)
    if unknown:
        raise TypeError(f"run_demo got unknown size arguments {sorted(unknown)}.")
    settings = {**(QUICK if quick else FULL), **sizes}
    vocabulary_size, seq_length, batch_size = (
        settings["vocabulary_size"], settings["seq_length"], settings["batch_size"])
    pretrain_steps, distill_steps, eval_steps = (
        settings["pretrain_steps"], settings["distill_steps"], settings["eval_steps"])
    max_documents = settings["max_documents"]
    import keras

    from keras_albert.export import export_for_serving
    from keras_albert.models import Distiller, student_from_teacher
    from keras_albert.models.encoder import Encoder
    from keras_albert.models.tasks import PretrainingModel
    from keras_albert.tokenizers import Preprocessor, SentencePieceTokenizer
    from keras_albert.optimizers import create_optimizer
    from keras_albert.training.callbacks import Throughput, peak_rss_mib
    from keras_albert.training.corpus import default_corpus_documents, iter_documents
    from keras_albert.training.pretrain import (
        compile_pretrainer,
        evaluate_pretrainer,
        fixed_batches,
        pretrain,
    )
    from keras_albert.training.pretraining_data import pretraining_dataset
    from keras_albert.training.run_directory import RunDirectory
    from keras_albert.training.strategy import resolve_strategy
    from keras_albert.training.vocab import train_sentencepiece

    teacher_config = dict(settings["teacher"])
    # Absolute: the exports are served from a process started in another directory.
    output_dir = os.path.abspath(output_dir)
    keras.utils.set_random_seed(seed)
    os.makedirs(output_dir, exist_ok=True)
    timings = {}
    started = time.perf_counter()

    # 1. Corpus.
    source = corpus or "the Python installation's pydoc topics and docstrings"
    log(f"[1/6] corpus: {source}")
    documents = iter_documents(corpus) if corpus else default_corpus_documents()
    train_docs, held_out_docs = _split_documents(documents, max_documents=max_documents)
    if not train_docs or not held_out_docs:
        raise ValueError(f"The corpus {source} has too few documents for the demo (need >= 10).")
    words = sum(len(line.split()) for doc in train_docs for line in doc)
    log(f"      {len(train_docs)} training documents ({words:,} words), "
        f"{len(held_out_docs)} held out")

    # 2. Vocabulary.
    t = time.perf_counter()
    proto = train_sentencepiece((line for doc in train_docs for line in doc), vocabulary_size)
    tokenizer = SentencePieceTokenizer(proto)
    timings["vocabulary_seconds"] = round(time.perf_counter() - t, 1)
    log(f"[2/6] SentencePiece vocabulary: {tokenizer.vocabulary_size} pieces "
        f"({timings['vocabulary_seconds']} s)")

    def data(docs, data_seed, repeat):
        return pretraining_dataset(lambda: iter(docs), tokenizer, seq_length=seq_length,
                                   batch_size=batch_size,
                                   max_predictions=max(2, round(seq_length * 0.15)),
                                   seed=data_seed, repeat=repeat)

    train_data = data(train_docs, seed, repeat=True)
    # Fixed held-out batches (the same masks) for every before / after evaluation.
    eval_data = fixed_batches(data(held_out_docs, seed + 1, repeat=True), eval_steps)
    tokens_per_batch = batch_size * seq_length

    # 3. Pretraining.
    strategy = resolve_strategy(strategy)
    with strategy.scope():
        encoder = Encoder(vocabulary_size=tokenizer.vocabulary_size, remat="full",
                          activation="gelu_approximate", seed=seed, **teacher_config)
        teacher_model = PretrainingModel(encoder)
        # AdaFactor's own relative step size (min(1e-2, 1/sqrt(t)) times each
        # weight's RMS): an explicit 2e-3 for every weight diverged on this corpus.
        compile_pretrainer(teacher_model, create_optimizer("adafactor", None, weight_decay=0.0))
    log(f"[3/6] pretraining ALBERT ({encoder.count_params():,} parameters; "
        f"E={encoder.embedding_dim} H={encoder.hidden_dim} L={encoder.num_layers}, "
        f"all layers shared) for {pretrain_steps} steps of {batch_size} x {seq_length} "
        f"tokens, AdaFactor, remat=full")
    t = time.perf_counter()
    teacher_summary = pretrain(
        teacher_model, train_data, os.path.join(output_dir, "teacher"), pretrain_steps,
        steps_per_epoch=max(1, pretrain_steps // 4), eval_dataset=eval_data,
        eval_steps=eval_steps, tokenizer=tokenizer, tokens_per_batch=tokens_per_batch,
        resume=False, verbose=verbose, overwrite=True,  # a rerun replaces the demo's runs
    )
    timings["pretrain_seconds"] = round(time.perf_counter() - t, 1)
    teacher_rss = peak_rss_mib()

    # 4. Distillation into a student with half the layers.
    with strategy.scope():
        student_encoder = student_from_teacher(encoder)
        student_model = PretrainingModel(student_encoder, sentence_order=False)
        _copy_mlm_head(teacher_model, student_model)
        compile_pretrainer(student_model, "adam")
        student_before = evaluate_pretrainer(student_model, eval_data)
        distiller = Distiller(teacher_model, student_model)
        distiller.compile(optimizer=create_optimizer("adafactor", None, weight_decay=0.0))
    log(f"[4/6] distilling a {student_encoder.num_layers}-layer student "
        f"({student_encoder.count_params():,} parameters, no token types, no pooler) "
        f"for {distill_steps} steps")
    t = time.perf_counter()
    distill_throughput = Throughput(tokens_per_batch)
    distiller.fit(train_data, epochs=1, steps_per_epoch=distill_steps, verbose=verbose,
                  callbacks=[distill_throughput], shuffle=False)
    timings["distill_seconds"] = round(time.perf_counter() - t, 1)
    student_after = evaluate_pretrainer(student_model, eval_data)
    student_dir = RunDirectory(os.path.join(output_dir, "student"), strategy)
    student_dir.start(tokenizer, overwrite=True).finish(
        student_model, {"params": int(student_encoder.count_params()),
                        "steps": distill_steps, "before": student_before,
                        "after": student_after})

    # 5. Export, then serve from a fresh process that imports only TF + tf_text.
    log("[5/6] exporting SavedModels and serving them from a fresh process")
    preprocessor = Preprocessor(tokenizer, seq_length=seq_length)
    # TensorFlow Serving's layout: serving/<model>/<version>/, a new version each run.
    exports = {
        name: export_for_serving(model, os.path.join(output_dir, "serving", name), preprocessor)
        for name, model in (("teacher", encoder), ("student", student_encoder))
    }
    t = time.perf_counter()
    served = _serve_in_fresh_process(exports, DEMO_SENTENCES)
    timings["serve_seconds"] = round(time.perf_counter() - t, 1)
    features = preprocessor(DEMO_SENTENCES)
    serving_error = {}
    for name, model in (("teacher", encoder), ("student", student_encoder)):
        expected = np.asarray(model(features)["sequence_output"], dtype="float32")
        serving_error[name] = float(np.max(np.abs(expected - served[f"{name}/sequence_output"])))
    embeddings = _mean_pooled(served["teacher/sequence_output"], served["teacher/input_mask"])
    similarity = embeddings @ embeddings.T

    # 6. Summary.
    summary = {
        "corpus": source,
        "training_words": words,
        "vocabulary_size": tokenizer.vocabulary_size,
        "teacher": {
            "params": teacher_summary["params"],
            "peak_rss_mib": round(teacher_rss, 1),
            "tokens_per_second": teacher_summary["tokens_per_second"],
            "before": teacher_summary["before"],
            "after": teacher_summary["after"],
        },
        "student": {
            "params": int(student_encoder.count_params()),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            # Distillation steps: the teacher's forward pass is included.
            "tokens_per_second": round(distill_throughput.tokens_per_second, 1),
            "before": student_before,
            "after": student_after,
        },
        "serving_max_abs_error": serving_error,
        "served_cosine_similarity": np.round(similarity, 3).tolist(),
        "timings": timings,
        "total_seconds": round(time.perf_counter() - started, 1),
        "exports": exports,
    }
    with open(os.path.join(output_dir, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    log("[6/6] summary")
    log(format_summary(summary))
    return summary


def _copy_mlm_head(teacher, student):
    """The student starts from the teacher's masked-LM transform and output bias."""
    for source, target in zip(teacher.mlm_head.weights, student.mlm_head.weights):
        if "embeddings" not in source.path:  # the decoder is tied to the embeddings
            target.assign(source)


def format_summary(summary):
    def accuracy(results, key):
        value = results.get(key)
        return "-" if value is None else f"{value:.3f}"

    rows = [("", "teacher (ALBERT)", "student (distilled)")]
    teacher, student = summary["teacher"], summary["student"]
    rows.append(("parameters", f"{teacher['params']:,}", f"{student['params']:,}"))
    rows.append(("peak RSS (MiB)", f"{teacher['peak_rss_mib']:,.0f}",
                 f"{student['peak_rss_mib']:,.0f}"))
    rows.append(("tokens/s (pretrain | distill)", f"{teacher['tokens_per_second']:,.0f}",
                 f"{student['tokens_per_second']:,.0f}"))
    for key, label in (("mlm_logits_accuracy", "MLM accuracy"), ("sop_logits_accuracy",
                                                                  "SOP accuracy")):
        rows.append((f"{label} before", accuracy(teacher["before"], key),
                     accuracy(student["before"], key)))
        rows.append((f"{label} after", accuracy(teacher["after"], key),
                     accuracy(student["after"], key)))
    errors = summary["serving_max_abs_error"]
    rows.append(("served vs Keras (max |diff|)", f"{errors['teacher']:.1e}",
                 f"{errors['student']:.1e}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(f"total time: {summary['total_seconds']:.0f} s; exports: "
                 f"{', '.join(summary['exports'].values())}")
    return "\n".join(lines)
