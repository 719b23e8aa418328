"""Metrics of token classification (tagging, NER) and span question answering.

The Keras metric `TokenAccuracy` streams accuracy over labelled tokens during `fit`;
the NumPy functions score a whole evaluation set at the end of a run:

- token classification: labels are per-token class ids, `IGNORE_LABEL` (-100) on
  special tokens, continuation pieces and padding. `token_accuracy` is the accuracy
  on labelled tokens. With BIO tag names (`O`, `B-X`, `I-X`), `entity_f1` is the
  CoNLL entity-level micro F1 (an entity counts when its type, first and last word
  are right; an `I-X` that does not continue an `X` starts one, as conlleval reads
  it); with other tags, `macro_f1` averages the per-tag F1 over the tags that occur.
- span QA: `best_spans` decodes start / end logits to the highest-scoring span
  (start <= end, at most `max_answer_tokens` long, inside the context when its
  bounds are given, or `[CLS]` = position 0 for "no answer"); `span_scores` gives
  SQuAD's exact match and F1 computed on token positions: a span is the set of its
  token positions, F1 the harmonic mean of the overlap's share of the predicted and
  of the gold span. On positions, not on answer text: no text normalisation, so a
  prediction that differs from the gold span by one punctuation piece misses exact
  match where SQuAD's text score (which drops punctuation and articles) might not.

`evaluate_token_predictions` and `evaluate_span_predictions` give the usual set
(`keras_albert.metrics.evaluate_predictions` calls them for tasks "token" and "span").

Example:

>>> bio_entities(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"])
[('PER', 0, 1), ('LOC', 3, 3), ('LOC', 4, 4)]
>>> span_scores([[3, 5], [0, 0]], [[4, 5], [2, 2]])
{'exact_match': 0.0, 'f1': 0.4}
"""

import keras
import numpy as np

# Token-classification labels with this value (special tokens, continuation pieces)
# are not scored.
IGNORE_LABEL = -100


@keras.saving.register_keras_serializable(package="keras_albert")
class TokenAccuracy(keras.metrics.Mean):
    """Accuracy of per-token logits over labelled tokens (label != IGNORE_LABEL)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.cast(y_true, "int32")
        predicted = keras.ops.cast(keras.ops.argmax(y_pred, axis=-1), "int32")
        labelled = keras.ops.cast(keras.ops.not_equal(y_true, IGNORE_LABEL), "float32")
        correct = keras.ops.cast(keras.ops.equal(predicted, y_true), "float32")
        return super().update_state(correct, sample_weight=labelled)


# --------------------------------------------------------------------------- tokens


def _token_pairs(logits, labels):
    """Predicted and gold ids [N, W] of the same width (the narrower one's).

    `logits` [N, W, C] (argmax) or predicted ids [N, W]; labels [N, W'] with
    `IGNORE_LABEL` where unscored. Positions past the narrower width must be
    unlabelled (a model's output is as wide as its input, and labels end there).
    """
    predicted = np.asarray(logits)
    if predicted.ndim == 3:
        predicted = predicted.argmax(axis=-1)
    labels = np.asarray(labels)
    if predicted.ndim != 2 or labels.ndim != 2 or len(predicted) != len(labels):
        raise ValueError(f"Expected logits [N, W, C] or ids [N, W] and labels [N, W]; got "
                         f"{np.shape(logits)} and {labels.shape}.")
    width = min(predicted.shape[1], labels.shape[1])
    if np.any(labels[:, width:] != IGNORE_LABEL):
        raise ValueError("Labelled tokens lie beyond the predictions' width.")
    return predicted[:, :width].astype(np.int64), labels[:, :width].astype(np.int64)


def token_accuracy(logits, labels):
    """Accuracy over labelled tokens (label != IGNORE_LABEL)."""
    predicted, labels = _token_pairs(logits, labels)
    labelled = labels != IGNORE_LABEL
    if not labelled.any():
        raise ValueError("No labelled tokens.")
    return float(np.mean(predicted[labelled] == labels[labelled]))


def is_bio(tag_names):
    """Whether the tags are BIO (IOB2) tags: `O`, `B-TYPE`, `I-TYPE`, some not `O`."""
    if not tag_names:
        return False
    names = [str(name) for name in tag_names]
    return all(name == "O" or name[:2] in ("B-", "I-") for name in names) and any(
        name != "O" for name in names)


def bio_entities(tags):
    """The entities `(type, first, last)` of one sentence's BIO tag names."""
    entities, first, kind = [], None, None
    for index, tag in enumerate(list(tags) + ["O"]):
        prefix, _, name = str(tag).partition("-")
        if kind is not None and (prefix != "I" or name != kind):
            entities.append((kind, first, index - 1))
            kind = None
        if prefix == "B" or (prefix == "I" and kind is None):
            first, kind = index, name
    return entities


def entity_f1(predicted_tags, gold_tags):
    """Entity-level micro F1 over sentences of BIO tag names (0.0 without entities)."""
    true_positives = predicted_count = gold_count = 0
    for predicted, gold in zip(predicted_tags, gold_tags, strict=True):
        predicted, gold = set(bio_entities(predicted)), set(bio_entities(gold))
        true_positives += len(predicted & gold)
        predicted_count += len(predicted)
        gold_count += len(gold)
    total = predicted_count + gold_count
    return 2.0 * true_positives / total if total else 0.0


def macro_f1(predicted, gold):
    """Mean F1 of every class that occurs in `predicted` or `gold` (flat id arrays)."""
    predicted, gold = np.asarray(predicted).reshape(-1), np.asarray(gold).reshape(-1)
    scores = []
    for label in np.union1d(predicted, gold):
        true_positives = np.sum((predicted == label) & (gold == label))
        scores.append(2.0 * true_positives / (np.sum(predicted == label) + np.sum(gold == label)))
    return float(np.mean(scores)) if scores else 0.0


def evaluate_token_predictions(logits, labels, label_names=None):
    """`accuracy` on labelled tokens, and `entity_f1` for BIO `label_names` (the tag
    of id i is `label_names[i]`) or else `macro_f1` over the tags."""
    predicted, labels = _token_pairs(logits, labels)
    labelled = labels != IGNORE_LABEL
    report = {"accuracy": token_accuracy(predicted, labels)}
    if is_bio(label_names):
        names = np.asarray([str(name) for name in label_names], dtype=object)
        if predicted.max(initial=0) >= len(names):
            raise ValueError(f"Predicted tag ids reach {predicted.max()}; only "
                             f"{len(names)} tag names.")
        report["entity_f1"] = entity_f1(
            [names[row[keep]] for row, keep in zip(predicted, labelled)],
            [names[row[keep]] for row, keep in zip(labels, labelled)])
    else:
        report["macro_f1"] = macro_f1(predicted[labelled], labels[labelled])
    return report


# --------------------------------------------------------------------------- spans


def best_spans(start_logits, end_logits, context=None, max_answer_tokens=30):
    """The highest-scoring span of each example: int64 [N, 2] (first, last position).

    A span `(s, e)` scores `start_logits[s] + end_logits[e]` among `s <= e <
    s + max_answer_tokens`; with `context` ([N, 2] first and last token position of
    each example's context) only spans inside it compete, and `(0, 0)` ([CLS], "no
    answer") always does.
    """
    start_logits = np.asarray(start_logits, np.float64)
    end_logits = np.asarray(end_logits, np.float64)
    if start_logits.shape != end_logits.shape or start_logits.ndim != 2:
        raise ValueError(f"start and end logits must both be [N, W]; got "
                         f"{start_logits.shape} and {end_logits.shape}.")
    count, width = start_logits.shape
    positions = np.arange(width)
    allowed = np.ones((count, width), bool)
    if context is not None:
        context = np.asarray(context).reshape(count, 2)
        allowed = (positions >= context[:, :1]) & (positions <= context[:, 1:])
    best_score = start_logits[:, 0] + end_logits[:, 0]  # (0, 0): no answer
    best = np.zeros((count, 2), np.int64)
    for length in range(min(max_answer_tokens, width)):
        ends = positions[:width - length] + length
        score = start_logits[:, :width - length] + end_logits[:, ends]
        valid = allowed[:, :width - length] & allowed[:, ends]
        score = np.where(valid, score, -np.inf)
        starts = score.argmax(axis=1)
        top = score[np.arange(count), starts]
        better = top > best_score
        best_score = np.where(better, top, best_score)
        best[better] = np.stack([starts, starts + length], axis=1)[better]
    return best


def span_scores(predicted, gold):
    """SQuAD's `exact_match` and `f1`, averaged, on token positions (see the module
    docstring): `predicted` and `gold` are [N, 2] inclusive (first, last) positions."""
    predicted = np.asarray(predicted, np.int64).reshape(-1, 2)
    gold = np.asarray(gold, np.int64).reshape(-1, 2)
    if predicted.shape != gold.shape or not len(gold):
        raise ValueError(f"{len(predicted)} predicted spans for {len(gold)} gold spans.")
    overlap = np.maximum(
        0, np.minimum(predicted[:, 1], gold[:, 1]) - np.maximum(predicted[:, 0], gold[:, 0]) + 1)
    precision = overlap / np.maximum(predicted[:, 1] - predicted[:, 0] + 1, 1)
    recall = overlap / np.maximum(gold[:, 1] - gold[:, 0] + 1, 1)
    f1 = np.where(overlap > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    return {"exact_match": float(np.mean(np.all(predicted == gold, axis=1))),
            "f1": float(np.mean(f1))}


def evaluate_span_predictions(logits, labels, max_answer_tokens=30):
    """`exact_match` and `f1` on token positions of the best spans (`best_spans`).

    `logits`: `{"start_logits": [N, W], "end_logits": [N, W]}` (a
    `SpanQuestionAnswerer`'s output) or predicted spans [N, 2]. `labels`: gold
    `(start, end)` positions [N, 2], or [N, 4] with each context's first and last token
    position after them, to which predictions are then limited (as BERT's SQuAD
    decoding does).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] not in (2, 4):
        raise ValueError(f"Span labels are [N, 2] or [N, 4]; got shape {labels.shape}.")
    if isinstance(logits, dict):
        context = labels[:, 2:] if labels.shape[1] == 4 else None
        predicted = best_spans(logits["start_logits"], logits["end_logits"], context,
                               max_answer_tokens)
    else:
        predicted = logits
    return span_scores(predicted, labels[:, :2])
