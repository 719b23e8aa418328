"""Token classification and span QA: files, alignment, metrics, and `finetune` end to end.

References: transformers' fast BERT tokenizer (`word_ids()`, `offset_mapping`) and the
`sentencepiece` library's own piece offsets on the same vocabularies, for the
alignment of word tags and answer characters to pieces; numbers worked out by hand
for the metrics.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_albert import token_span_metrics
from keras_albert.metrics import IGNORE_LABEL, evaluate_predictions
from keras_albert.models.tasks import SpanQuestionAnswerer, TokenClassifier
from keras_albert.tokenizers import Preprocessor, SentencePieceTokenizer, WordPieceTokenizer
from keras_albert.training.resumable_streams import task_stream
from keras_albert.training.task_dataset import task_targets
from keras_albert.training.task_sources import read_task_splits
from keras_albert.training.token_span_encoding import answer_token_spans
from keras_albert.training.token_span_files import load_span_file, load_token_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQ = 16

SENTENCES = [
    (["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
     ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]),
    (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
    (["Müller's", "déjà-vu", "in", "São", "Paulo", "(1990s)", "cost", "$3,000.50"],
     ["B-PER", "O", "O", "B-LOC", "I-LOC", "O", "O", "O"]),
    (["Unbelievably", "lengthy", "sentences", "get", "truncated", "somewhere", "around",
      "here", "by", "the", "sixteen", "token", "limit", "Zürich"],
     ["O"] * 13 + ["B-LOC"]),
]

SPANS = [  # question, context, answer text, answer start
    ("Who wrote it?", "Ada Lovelace wrote the first program in 1843.", "Ada Lovelace", 0),
    ("When?", "Ada Lovelace wrote the first program in 1843.", "1843", 40),
    ("Which city?", "Das Café liegt in Zürich (Schweiz), nicht in Genf.", "Zürich", 18),
    ("What decade?", "It happened in the 1990s, or so they say.", "1990", 19),
    ("Where?", "A long context " + "with many filler words " * 4 + "ends in Paris.",
     "Paris", 15 + 23 * 4 + 8),
]


@pytest.fixture(scope="module")
def bert_vocab(data_dir):
    return str(data_dir / "vocab" / "bert_uncased_vocab.txt")


@pytest.fixture(scope="module")
def spiece(data_dir):
    return str(data_dir / "vocab" / "albert_spiece_rebuilt.model")


def _write_jsonl(path, objects):
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


def _token_file(path, sentences=SENTENCES):
    return _write_jsonl(path, [{"tokens": w, "tags": t} for w, t in sentences])


def _span_file(path, rows=SPANS):
    return _write_jsonl(path, [{"question": q, "context": c,
                                "answers": {"text": [a], "answer_start": [s]}}
                               for q, c, a, s in rows])


# --------------------------------------------------------------------------- alignment


def test_word_tags_sit_on_first_pieces_as_transformers_word_ids(tmp_path, bert_vocab):
    from transformers import BertTokenizerFast

    data = load_token_file(_token_file(tmp_path / "train.jsonl"))
    assert data.label_names == ["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-PER", "O"]
    preprocessor = Preprocessor(WordPieceTokenizer(bert_vocab), seq_length=SEQ)
    labels = task_targets(data, preprocessor)
    reference = BertTokenizerFast(bert_vocab)
    lost = 0
    for row, (words, tags) in zip(labels, SENTENCES):
        encoding = reference(words, is_split_into_words=True, truncation=True, max_length=SEQ)
        expected, previous = [], None
        for word in encoding.word_ids():
            first_piece = word is not None and word != previous
            expected.append(data.label_names.index(tags[word]) if first_piece else IGNORE_LABEL)
            previous = word
        expected += [IGNORE_LABEL] * (SEQ - len(expected))
        assert row.tolist() == expected
        lost += len(set(range(len(words))) - set(encoding.word_ids()))
    assert lost == 5  # the last sentence's words past 16 pieces
    _, eval_data = read_task_splits(str(tmp_path / "train.jsonl"), holdout=0.5)
    assert eval_data.task == "token"

    # The batches carry the same labels under the preprocessor's own ids, and a resumed
    # stream is the tail of the whole one.
    stream = [(x["input_word_ids"].numpy(), y.numpy())
              for x, y in task_stream(data, preprocessor, 2, seed=3, end_step=6)]
    tail = [(x["input_word_ids"].numpy(), y.numpy())
            for x, y in task_stream(data, preprocessor, 2, seed=3, start_step=3, end_step=6)]
    assert all((a[0] == b[0]).all() and (a[1] == b[1]).all()
               for a, b in zip(stream[3:], tail, strict=True))
    seen = {}
    for batch_ids, batch_labels in stream:
        for row_ids, row_labels in zip(batch_ids, batch_labels):
            length = int(np.sum(row_ids != 0))  # [PAD] is 0
            seen[tuple(row_ids[:length])] = tuple(row_labels[:length])
    for (words, _), row in zip(SENTENCES, labels):
        packed = reference(words, is_split_into_words=True, truncation=True,
                           max_length=SEQ)["input_ids"]
        assert seen[tuple(packed)] == tuple(row[:len(packed)])


def test_sentencepiece_word_pieces_match_the_sentencepiece_library(spiece):
    import sentencepiece

    from keras_albert.training.token_span_records import TokenTaskData

    sentences = [["the", "quick", "brownish", "fox", "jumped"],
                 ["unbelievably", "over", "lazy", "dogs", ",", "twice"]]
    data = TokenTaskData(sentences, [list(range(5)), list(range(6))])
    tokenizer = SentencePieceTokenizer(spiece)
    labels = task_targets(data, Preprocessor(tokenizer, seq_length=SEQ))
    processor = sentencepiece.SentencePieceProcessor(model_file=spiece)
    for row, words in zip(labels, sentences):
        expected = [IGNORE_LABEL]
        for tag, word in enumerate(words):
            expected += [tag] + [IGNORE_LABEL] * (len(processor.encode(word)) - 1)
        expected = expected[:SEQ - 1] + [IGNORE_LABEL]
        assert row.tolist() == expected + [IGNORE_LABEL] * (SEQ - len(expected))


def _overlapping_pieces(offsets, start, end):
    hits = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
    return hits[0], hits[-1]


def test_answer_characters_map_to_pieces_as_offset_mappings(bert_vocab, spiece):
    import sentencepiece
    from transformers import BertTokenizerFast

    contexts = [c for _, c, _, _ in SPANS]
    starts = [s for _, _, _, s in SPANS]
    ends = [s + len(a) for _, _, a, s in SPANS]
    for _, context, answer, start in SPANS:
        assert context[start:start + len(answer)] == answer

    # WordPiece: piece offsets, against transformers' offset_mapping.
    reference = BertTokenizerFast(bert_vocab)
    spans = answer_token_spans(WordPieceTokenizer(bert_vocab), contexts, starts, ends)
    for span, context, start, end in zip(spans, contexts, starts, ends):
        offsets = reference(context, add_special_tokens=False,
                            return_offsets_mapping=True)["offset_mapping"]
        assert tuple(span) == _overlapping_pieces(offsets, start, end)

    # SentencePiece: re-tokenized prefixes, against the library's piece offsets (on
    # lowercase ASCII text, which ALBERT's normalisation leaves as it is).
    processor = sentencepiece.SentencePieceProcessor(model_file=spiece)
    lower = [(c.lower(), s, s + len(a)) for _, c, a, s in SPANS if c.isascii()]
    lower.append(("the 1990s were unbelievably (loud).", 4, 8))  # ends inside a piece
    lower.append(("the 1990s were unbelievably (loud).", 29, 33))
    lower.append(("the 1990s were unbelievably (loud).", 28, 34))  # after a bare "▁"
    spans = answer_token_spans(SentencePieceTokenizer(spiece), *zip(*lower))
    for span, (context, start, end) in zip(spans, lower):
        pieces = processor.encode(context, return_type="proto").pieces
        offsets = [(piece.begin, piece.end) for piece in pieces]
        assert tuple(span) == _overlapping_pieces(offsets, start, end)


def test_span_positions_in_packed_pairs_and_truncated_answers(tmp_path, bert_vocab):
    from transformers import BertTokenizerFast

    data = load_span_file(_span_file(tmp_path / "squad.jsonl"))
    seq = 24
    targets = task_targets(data, Preprocessor(WordPieceTokenizer(bert_vocab), seq_length=seq))
    reference = BertTokenizerFast(bert_vocab)
    for row, (question, context, answer, start) in zip(targets, SPANS):
        encoding = reference(question, context, truncation="longest_first", max_length=seq,
                             return_offsets_mapping=True)
        context_tokens = [i for i, s in enumerate(encoding.sequence_ids()) if s == 1]
        offsets = [encoding["offset_mapping"][i] for i in context_tokens]
        end = start + len(answer)
        if offsets[-1][1] >= end:  # the answer survived truncation
            first, last = _overlapping_pieces(offsets, start, end)
            expected = (context_tokens[first], context_tokens[last])
        else:
            expected = (0, 0)  # [CLS], as BERT's SQuAD recipe
        assert tuple(row[:2]) == expected
        assert tuple(row[2:]) == (context_tokens[0], context_tokens[-1])
    assert tuple(targets[-1][:2]) == (0, 0)  # "Paris" is cut away at 24 tokens


# --------------------------------------------------------------------------- metrics


def test_token_metrics_by_hand():
    names = ["O", "B-ORG", "B-MISC", "B-PER", "I-PER"]
    labels = np.array([[IGNORE_LABEL, 1, 0, 2, IGNORE_LABEL],
                       [IGNORE_LABEL, 3, IGNORE_LABEL, 4, 0]])
    predicted = np.array([[4, 1, 0, 0, 0],   # ORG right, MISC missed
                          [0, 3, 1, 0, 0]])  # PER(0..1) cut to PER(0..0)
    logits = np.eye(5)[predicted]
    # 4 of 6 labelled tokens; entities: 1 right of 2 predicted and 3 gold -> 2/5.
    assert evaluate_predictions("token", logits, labels, label_names=names) == {
        "accuracy": pytest.approx(4 / 6), "entity_f1": pytest.approx(0.4)}
    assert token_span_metrics.bio_entities(["I-PER", "I-LOC", "B-LOC", "I-LOC", "O"]) == [
        ("PER", 0, 0), ("LOC", 1, 1), ("LOC", 2, 3)]
    # Not BIO: macro F1 over the tags that occur: (4/5 + 1 + 0) / 3.
    gold = np.array([[0, 1, 2, 0]])
    report = evaluate_predictions("token", np.eye(3)[[[0, 1, 0, 0]]], gold,
                                  label_names=["NOUN", "VERB", "DET"])
    assert report == {"accuracy": pytest.approx(0.75), "macro_f1": pytest.approx(0.6)}


def test_span_metrics_by_hand():
    start = np.full((2, 6), -5.0)
    end = np.full((2, 6), -5.0)
    start[0, [1, 3]], end[0, [2, 5]] = [4.0, 1.5], [0.0, 3.0]
    start[1, [0, 2]], end[1, [0, 2]] = [1.0, 0.5], [1.0, 0.6]
    logits = {"start_logits": start, "end_logits": end}
    # Example 0: 1..5 scores 4 + 3, the most; example 1: [CLS] (1 + 1) beats 2..2.
    assert token_span_metrics.best_spans(start, end).tolist() == [[1, 5], [0, 0]]
    # At most 3 tokens: 3..5 (1.5 + 3) beats 1..2 (4 + 0).
    assert token_span_metrics.best_spans(start, end, max_answer_tokens=3).tolist() == [
        [3, 5], [0, 0]]
    # Gold spans, then each context's first and last token: 3..5 wins in 3..5 again.
    labels = np.array([[4, 5, 3, 5], [2, 2, 2, 4]])
    # Example 0 predicts 3..5 against gold 4..5: overlap 2, precision 2/3, recall 1 ->
    # F1 0.8; example 1 predicts [CLS] against 2..2: 0. EM 0 both.
    report = evaluate_predictions("span", logits, labels)
    assert report == {"exact_match": 0.0, "f1": pytest.approx(0.4)}
    assert evaluate_predictions("span", np.array([[4, 5], [0, 0]]), labels[:, :2]) == {
        "exact_match": 0.5, "f1": 0.5}


# --------------------------------------------------------------------------- the command


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "keras_albert.cli", *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO)


def _finetune(train, evaluation, model, vocab, out, *extra):
    result = _cli("finetune", "--model", model, "--vocab", vocab, "--train", str(train),
                  "--eval", str(evaluation), "--max-steps", "2", "--batch", "4", "--seq", "32",
                  "--output", str(out), "--quiet", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def test_finetune_token_classification_end_to_end(tmp_path, bert_vocab):
    people = ["Ada", "Grace", "Alan", "Edsger"]
    places = ["Paris", "London", "Zürich", "Oslo"]
    sentences = [([person, "visited", place, "."], ["B-PER", "O", "B-LOC", "O"])
                 for person in people for place in places]
    train = _token_file(tmp_path / "train.jsonl", sentences)
    dev = _token_file(tmp_path / "dev.jsonl", sentences[:6])
    summary = _finetune(train, dev, "bert_tiny", bert_vocab, tmp_path / "run", "--task",
                        "token")
    assert summary["task"] == "token" and summary["steps"] == 2
    assert summary["label_names"] == ["B-LOC", "B-PER", "O"]
    assert set(summary["eval"]) == {"accuracy", "entity_f1"}
    assert 0.0 <= summary["eval"]["entity_f1"] <= 1.0 and summary["eval_examples"] == 6
    assert summary["truncated_words"] == {"train": 0, "eval": 0}
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert isinstance(model, TokenClassifier) and model.output.shape[-1] == 3


def test_finetune_span_qa_end_to_end_infers_the_kind(tmp_path, spiece):
    rows = [(f"Who wrote {thing}?", f"{person} wrote {thing} in {year}.", person, 0)
            for person in ("Ada", "Grace", "Alan", "Edsger")
            for thing, year in (("it", 1843), ("that", 1952), ("a book", 1936),
                                ("letters", 1968))]
    train = _span_file(tmp_path / "train.jsonl", rows)
    dev = _span_file(tmp_path / "dev.jsonl", rows[:5])
    # No --task: question + context say span QA. ALBERT's SentencePiece vocabulary.
    summary = _finetune(train, dev, "albert_tiny", spiece, tmp_path / "run")
    assert summary["task"] == "span" and summary["text_inputs"] == 2
    assert set(summary["eval"]) == {"exact_match", "f1"}
    assert summary["truncated_answers"] == {"train": 0, "eval": 0}
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert isinstance(model, SpanQuestionAnswerer)


def test_token_file_with_a_tag_missing_fails_before_training(tmp_path, bert_vocab):
    train = _token_file(tmp_path / "train.jsonl", SENTENCES[:2] + [(["a", "b"], ["O"])])
    result = _cli("finetune", "--model", "bert_tiny", "--vocab", bert_vocab, "--train",
                  str(train), "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    # One line of ours (TensorFlow may log its start-up lines before it).
    ours = [line for line in result.stderr.splitlines() if "keras-albert" in line]
    assert ours == [f"keras-albert finetune: {train}, line 3: 1 tags for 2 tokens; every "
                    "token needs one tag."]
    assert "Traceback" not in result.stderr and result.stderr.strip().endswith(ours[0])
    assert not (tmp_path / "run").exists()
