"""Token-classification and span-QA JSONL files (`.gz` ok) to `TokenTaskData` / `SpanTaskData`.

One JSON object a line:

- token classification (CoNLL-style words, one tag per word):
  `{"tokens": ["EU", "rejects", "German", "call"], "tags": ["B-ORG", "O", "B-MISC", "O"]}`.
  Tag names become ids (sorted names, or the `label_names` given: an evaluation file
  reuses the training file's); integer tags are taken as ids.
- span QA (SQuAD-style): `{"question": "...", "context": "...",
  "answers": {"text": ["..."], "answer_start": [42]}}`. `answer_start` counts
  characters of the context (Python `str` indices); the first answer is the training
  target, none (`"text": []`, SQuAD 2.0) means "no answer". Without `answers` on any
  line the file is unlabelled (for prediction).

`jsonl_task_kind` tells the kind from the first object's keys: `tokens` + `tags` is
"token", `question` + `context` is "span". Errors name the file and the line.

Example:

>>> data = load_token_file("conll/train.jsonl")             # doctest: +SKIP
>>> data.label_names                                        # doctest: +SKIP
['B-LOC', 'B-MISC', 'B-ORG', 'B-PER', 'I-LOC', 'I-MISC', 'I-ORG', 'I-PER', 'O']
>>> dev = load_token_file("conll/dev.jsonl", label_names=data.label_names)  # doctest: +SKIP
"""

import os

from keras_albert.training.task_files import json_rows
from keras_albert.training.task_files import task_file_format
from keras_albert.training.task_labels import parse_labels
from keras_albert.training.token_span_records import SpanTaskData
from keras_albert.training.token_span_records import TokenTaskData

TOKEN_KEYS = ("tokens", "tags")
SPAN_KEYS = ("question", "context")


def jsonl_task_kind(path):
    """"token", "span", or None (not a JSONL file, or neither kind's keys) from the
    keys of the file's first object."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        return None
    try:
        if task_file_format(path) != "jsonl":
            return None
    except ValueError:
        return None
    keys, _ = next(json_rows(path))
    keys = set(keys or ())
    if keys.issuperset(TOKEN_KEYS):
        return "token"
    if keys.issuperset(SPAN_KEYS):
        return "span"
    return None


def _jsonl_objects(path, keys, kind, limit):
    """`(line, object)` of every line, each checked to have `keys`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Task data file not found: '{path}'.")
    if task_file_format(path) != "jsonl":
        raise ValueError(f"{kind} data is read from .jsonl files (.gz ok); got '{path}'.")
    rows = json_rows(path)
    header, _ = next(rows)
    if header is None:
        raise ValueError(f"Task data file '{path}' is empty.")
    objects = []
    for line, row in rows:
        missing = [key for key in keys if key not in row]
        if missing:
            raise ValueError(f"{path}, line {line}: the object lacks the keys {missing} "
                             f"({kind} data has {list(keys)}).")
        objects.append((line, row))
        if limit is not None and len(objects) >= limit:
            break
    return objects


def load_token_file(path, label_names=None, limit=None, num_classes=None):
    """Reads words and their tags (see the module docstring) into a `TokenTaskData`.

    Tags mean what `keras_albert.training.task_labels` says classification labels
    mean; without `label_names`, int tags must be below `num_classes` when given (the
    training data's, for its evaluation data).

    Raises ValueError naming the line of an object whose `tokens` and `tags` differ
    in length, whose words are not strings, or whose tag is blank, not in
    `label_names` or an id out of range.
    """
    objects = _jsonl_objects(path, TOKEN_KEYS, "Token-classification", limit)
    words, raw_tags, tag_lines = [], [], []
    for line, row in objects:
        tokens, tags = row["tokens"], row["tags"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"{path}, line {line}: 'tokens' must be a list of strings.")
        if not isinstance(tags, list):
            raise ValueError(f"{path}, line {line}: 'tags' must be a list.")
        if len(tags) != len(tokens):
            raise ValueError(f"{path}, line {line}: {len(tags)} tags for {len(tokens)} "
                             "tokens; every token needs one tag.")
        for tag in tags:
            if isinstance(tag, bool) or not isinstance(tag, (str, int)):
                raise ValueError(f"{path}, line {line}: the tag {tag!r} is neither a name "
                                 "nor an int id.")
        words.append(tokens)
        raw_tags.extend(tags)
        tag_lines.extend([line] * len(tags))
    if not raw_tags:
        raise ValueError(f"'{path}' has no tagged words.")
    ids, _, names = parse_labels(raw_tags, tag_lines, "classification", label_names, path,
                                 "tags", num_classes)
    tags, start = [], 0
    for tokens in words:
        tags.append(ids[start:start + len(tokens)])
        start += len(tokens)
    return TokenTaskData(words, tags, names)


def _first_answer(answers, context, path, line):
    """`(start, text)` of the first answer; `(-1, "")` for none."""
    if isinstance(answers, dict):  # {"text": [...], "answer_start": [...]}
        texts, starts = answers.get("text"), answers.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(
                starts):
            raise ValueError(f"{path}, line {line}: 'answers' needs equally long lists "
                             "'text' and 'answer_start'.")
        answers = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
    if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
        raise ValueError(f"{path}, line {line}: 'answers' must be "
                         '{"text": [...], "answer_start": [...]}.')
    if not answers:
        return -1, ""
    text, start = answers[0].get("text"), answers[0].get("answer_start")
    if not isinstance(text, str) or isinstance(start, bool) or not isinstance(start, int):
        raise ValueError(f"{path}, line {line}: an answer needs a string 'text' and an int "
                         "'answer_start'.")
    if start < 0 or start + len(text) > len(context):
        raise ValueError(f"{path}, line {line}: the answer at characters {start}.."
                         f"{start + len(text)} is not inside the context "
                         f"({len(context)} characters).")
    return start, text


def load_span_file(path, limit=None):
    """Reads SQuAD-style questions (see the module docstring) into a `SpanTaskData`."""
    objects = _jsonl_objects(path, SPAN_KEYS, "Span-QA", limit)
    labelled = ["answers" in row for _, row in objects]
    if any(labelled) and not all(labelled):
        line = objects[labelled.index(False)][0]
        raise ValueError(f"{path}, line {line}: no 'answers', though other lines have them.")
    questions, contexts, starts, texts = [], [], [], []
    for line, row in objects:
        question, context = row["question"], row["context"]
        if not isinstance(question, str) or not isinstance(context, str):
            raise ValueError(f"{path}, line {line}: 'question' and 'context' must be strings.")
        questions.append(question)
        contexts.append(context)
        if labelled[0]:
            start, text = _first_answer(row["answers"], context, path, line)
            starts.append(start)
            texts.append(text)
    if not labelled[0]:
        return SpanTaskData(questions, contexts)
    return SpanTaskData(questions, contexts, starts, texts)
