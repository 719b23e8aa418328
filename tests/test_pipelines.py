"""Pretraining, fine-tuning, export, strategy helper and the training commands."""

import gzip
import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_albert import Encoder
from keras_albert.models import PretrainingModel
from keras_albert.tokenizers import SentencePieceTokenizer, WordPieceTokenizer
from keras_albert.optimizers import create_optimizer
from keras_albert.models.task_kinds import task_model
from keras_albert.training.pretrain import compile_pretrainer, pretrain
from keras_albert.training.pretraining_data import pretraining_dataset
from keras_albert.training.strategy import resolve_strategy
from keras_albert.training.vocab import train_sentencepiece

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _corpus_documents(data_dir, limit):
    """Paragraphs of the shared Python-docs corpus as documents (read here, not by the
    code under test)."""
    documents, current = [], []
    with gzip.open(data_dir / "corpus" / "python311_docs.txt.gz", "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                current.append(line.strip())
            elif current:
                if len(current) >= 2:
                    documents.append(current)
                current = []
            if len(documents) >= limit:
                break
    return documents


@pytest.fixture(scope="module")
def corpus_tokenizer(data_dir):
    documents = _corpus_documents(data_dir, 3000)
    proto = train_sentencepiece((line for doc in documents for line in doc), 2000)
    return documents, SentencePieceTokenizer(proto)


def test_trained_vocabulary_has_albert_special_ids(corpus_tokenizer):
    _, tokenizer = corpus_tokenizer
    assert tokenizer.vocabulary_size == 2000
    ids = (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
           tokenizer.mask_id)
    assert ids == (0, 1, 2, 3, 4)
    # Frequent corpus words are single pieces, and text round-trips.
    text = "the function returns a list of strings"
    assert tokenizer.detokenize(tokenizer(text)).numpy().decode() == text
    assert len(tokenizer(text).numpy()) <= 9


def test_pretraining_loss_falls_on_real_corpus(corpus_tokenizer, tmp_path):
    documents, tokenizer = corpus_tokenizer
    train_docs = documents[:2700]
    held_out = documents[2700:]
    common = dict(tokenizer=tokenizer, seq_length=64, batch_size=16, max_predictions=10,
                  repeat=True)
    train = pretraining_dataset(lambda: iter(train_docs), seed=0, **common)
    evaluation = pretraining_dataset(lambda: iter(held_out), seed=1, **common)
    encoder = Encoder.from_preset("albert_tiny", vocabulary_size=tokenizer.vocabulary_size,
                                  remat="full", seed=0)
    model = PretrainingModel(encoder)
    optimizer = create_optimizer("adafactor", 3e-3, total_steps=60, warmup_steps=6,
                                 weight_decay=0.0)
    compile_pretrainer(model, optimizer)
    summary = pretrain(model, train, str(tmp_path), steps=60, steps_per_epoch=20,
                       eval_dataset=evaluation, eval_steps=4, tokenizer=tokenizer,
                       tokens_per_batch=16 * 64, verbose=0)
    before, after = summary["before"], summary["after"]
    # Random logits over 2,000 pieces: loss ~ln(2000) = 7.6. Learning the unigram
    # distribution alone brings it far below.
    assert before["mlm_logits_loss"] > 7.0
    assert after["mlm_logits_loss"] < before["mlm_logits_loss"] - 1.0
    assert after["mlm_logits_accuracy"] > before["mlm_logits_accuracy"] + 0.02
    assert 0.0 <= after["sop_logits_accuracy"] <= 1.0
    history = summary["history"]
    assert history["loss"][-1] < history["loss"][0]
    # Held-out curves: one evaluation per epoch on the same batches; the last one is
    # the "after" evaluation.
    assert len(history["val_mlm_logits_accuracy"]) == 3
    assert history["val_mlm_logits_loss"][-1] == pytest.approx(after["mlm_logits_loss"],
                                                               rel=1e-5)
    assert summary["tokens_per_second"] > 0
    # What a user gets back: a model that reloads, its vocabulary, TensorBoard logs.
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert reloaded.count_params() == model.count_params()
    assert (tmp_path / "spiece.model").exists()
    assert any(name.startswith("events") for _, _, files in os.walk(tmp_path / "logs")
               for name in files)
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 60


def _wordpiece(data_dir):
    return WordPieceTokenizer(str(data_dir / "vocab" / "bert_uncased_vocab.txt"))


def _random_ids(rng, batch, seq, vocabulary=200):
    ids = rng.integers(5, vocabulary, size=(batch, seq)).astype("int32")
    ids[:, 0] = 2
    return {"input_word_ids": ids, "input_mask": np.ones_like(ids),
            "input_type_ids": np.zeros_like(ids)}


@pytest.mark.parametrize("task", ["token", "span"])
def test_token_and_span_tasks_train_with_fit(task):
    """Tagging (label -100 ignored) and span QA learn a rule that depends on the tokens."""
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x = _random_ids(rng, 64, 12)
    ids = x["input_word_ids"]
    if task == "token":
        y = (ids % 2).astype("int32")  # tag = parity of the token id
        y[:, 0] = -100
        y[:, -3:] = -100  # unlabelled tokens, e.g. continuation pieces
    else:
        start = rng.integers(1, 6, size=64)
        ids[np.arange(64), start] = 7  # the answer starts at token 7 ...
        ids[np.arange(64), start + 3] = 9  # ... and ends at token 9
        ids[(ids == 7) & (np.arange(12) != start[:, None])] = 8
        ids[(ids == 9) & (np.arange(12) != start[:, None] + 3)] = 8
        y = {"start_logits": start.astype("int32"), "end_logits": (start + 3).astype("int32")}
    encoder = Encoder.from_preset("bert_tiny", vocabulary_size=200, dropout=0.0, seed=0)
    model = task_model(encoder, task, num_classes=2 if task == "token" else None)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)  # the task's loss
    history = model.fit(x, y, batch_size=16, epochs=12, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    if task == "token":
        assert history["accuracy"][-1] > 0.9
        # The ignored labels do not count: a model scoring them wrongly loses nothing.
        logits = model.predict(x, verbose=0)
        assert logits.shape == (64, 12, 2)
    else:
        assert history["start_logits_accuracy"][-1] > 0.9


def test_bad_task_arguments():
    encoder = Encoder.from_preset("bert_tiny", vocabulary_size=100)
    with pytest.raises(ValueError, match="Unknown task"):
        task_model(encoder, "ner")
    with pytest.raises(ValueError, match="num_classes"):
        task_model(encoder, "classification", num_classes=1)


def test_strategy_helper():
    assert resolve_strategy("auto").num_replicas_in_sync == 1  # one CPU here
    assert resolve_strategy("cpu").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="Unknown strategy"):
        resolve_strategy("gpus")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        resolve_strategy("multi_worker")
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="no TPU"):
        resolve_strategy("tpu")
    assert time.perf_counter() - start < 30


def _cli(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "keras_albert.cli", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def test_finetune_command_end_to_end(data_dir, tmp_path):
    vocab = data_dir / "vocab" / "bert_uncased_vocab.txt"
    out = tmp_path / "sst2"
    result = _cli("finetune", "--model", "bert_tiny", "--vocab", str(vocab),
                  "--train", str(data_dir / "sst2" / "dev.tsv"), "--holdout", "0.25",
                  "--limit", "400", "--epochs", "2", "--batch", "16", "--seq", "32",
                  "--learning-rate", "1e-3", "--output", str(out), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["task"] == "classification"
    assert set(summary["eval"]) >= {"accuracy", "f1", "mcc"}
    assert summary["eval_examples"] == 100 and summary["train_examples"] == 300
    model = keras.saving.load_model(out / "model.keras")
    assert model.output.shape[-1] == 2
    assert (out / "vocab.txt").exists()
    # A user reloads it, compiled (AdamW, schedule, F1 / MCC metrics), with keras_albert
    # imported and nothing else of ours.
    load = subprocess.run(
        [sys.executable, "-c", "import sys, keras, keras_albert; "
         "m = keras.saving.load_model(sys.argv[1]); print(type(m.optimizer).__name__)",
         str(out / "model.keras")], capture_output=True, text=True, cwd=str(tmp_path))
    assert load.stdout.strip().splitlines()[-1] == "AdamW", load.stderr[-2000:]
    history = json.loads((out / "summary.json").read_text())["history"]
    assert len(history["val_accuracy"]) == 2  # validated after each epoch

    # The fine-tuned model is the teacher of `distill`, in a new process.
    student_dir = tmp_path / "student"
    result = _cli("distill", "--teacher", str(out), "--train", str(data_dir / "sst2" / "dev.tsv"),
                  "--holdout", "0.25", "--limit", "400", "--epochs", "1", "--max-steps", "6",
                  "--batch", "16", "--seq", "32", "--output", str(student_dir), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["teacher_layers"], summary["student_layers"], summary["steps"]) == (2, 1, 6)
    assert summary["student_params"] < summary["teacher_params"]
    assert set(summary["student_eval"]) >= {"accuracy", "f1", "mcc"}
    student = keras.saving.load_model(student_dir / "model.keras")
    assert student.encoder.num_layers == 1 and student.encoder.use_pooler
    written = json.loads((student_dir / "summary.json").read_text())
    assert written["resumed_at_step"] == 0 and (student_dir / "vocab.txt").exists()
    assert {"loss", "ce_loss", "hard_loss", "cos_loss"} <= set(written["history"])


def test_commands_report_bad_input_clearly(data_dir, tmp_path):
    result = _cli("finetune", "--model", "no_such_model", "--train", "missing.tsv",
                  "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "missing.tsv" in result.stderr and "Traceback" not in result.stderr
    result = _cli("pretrain", "--corpus", str(tmp_path / "none.txt"), "--output",
                  str(tmp_path / "out"))
    assert result.returncode == 2
    assert "none.txt" in result.stderr and "Traceback" not in result.stderr
    result = _cli("distill", "--teacher", str(tmp_path / "no_teacher"), "--train",
                  str(data_dir / "sst2" / "dev.tsv"), "--limit", "40",
                  "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "no_teacher" in result.stderr and "Traceback" not in result.stderr


def test_demo_runs_end_to_end(tmp_path):
    """The README's main job, at a reduced size: every stage, served from a fresh process."""
    out = tmp_path / "demo"
    # A relative --output, as the README's command uses (the default).
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, "-m", "keras_albert.cli", "demo", "--quick",
                             "--output", "demo", "--quiet"], capture_output=True, text=True,
                            timeout=900, env=env, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    teacher, student = summary["teacher"], summary["student"]
    assert student["params"] < teacher["params"]
    for model in (teacher, student):
        assert 0.0 <= model["after"]["mlm_logits_accuracy"] <= 1.0
        assert model["tokens_per_second"] > 0
    assert teacher["after"]["loss"] < teacher["before"]["loss"]
    assert max(summary["serving_max_abs_error"].values()) < 1e-4
    assert "MLM accuracy after" in result.stdout
    for path in summary["exports"].values():
        assert os.path.exists(os.path.join(path, "saved_model.pb"))
