"""Training and evaluation data from what a user names: a file or `tfds:NAME[:SPLIT]`.

    train, evaluation = read_task_splits("train.tsv", eval_spec="dev.tsv")
    train, evaluation = read_task_splits("tfds:glue/sst2", holdout=0.1)

The evaluation data is read with the training data's task and label names (or, for
labels that are class ids, its number of classes), so its labels mean what the
training labels mean, and a class the training data lacks is refused, naming the
file and the line, before any model is built. A JSONL file whose objects have `tokens` +
`tags` is token-classification data, one with `question` + `context` span-QA data
(`keras_albert.training.token_span_files`), unless `task` says otherwise.
"""

import numpy as np

from keras_albert.training.task_files import load_task_file
from keras_albert.training.task_records import TaskData
from keras_albert.training.tfds_tasks import load_tfds
from keras_albert.training.token_span_files import jsonl_task_kind
from keras_albert.training.token_span_files import load_span_file
from keras_albert.training.token_span_files import load_token_file

# The kinds read by `token_span_files`, not `task_files`.
TOKEN_SPAN_TASKS = ("token", "span")


def _no_br(text):
    return text.replace("<br />", " ")


def _class_count(like):
    """The number of classes the evaluation data's int ids must stay below, when the
    training data `like` has ids rather than names (None when it has names, or none)."""
    if like is None or like.label_names is not None or like.task in ("regression", "span"):
        return None
    return like.num_classes


def _read_token_or_span(spec, task, label_names, num_classes, text_columns, label_column,
                        replace_br):
    if spec.startswith("tfds:"):
        raise ValueError(f"task={task!r} reads a .jsonl file, not {spec!r}.")
    if text_columns or label_column or replace_br:
        raise ValueError(f"{task} data has fixed keys (see keras_albert.training."
                         "token_span_files): text columns, a label column and "
                         "replace_br do not apply.")
    if task == "token":
        return load_token_file(spec, label_names=label_names, num_classes=num_classes)
    return load_span_file(spec)


def read_task(spec, split="train", like=None, task=None, text_columns=None,
              label_column=None, limit=None, replace_br=False, seed=0):
    """A `TaskData` (or `TokenTaskData` / `SpanTaskData`) from a file or
    `tfds:NAME[:SPLIT]`; `like` (the training data) fixes the task and the label ids.
    `limit` keeps a random sample (seeded by `seed`) of that many rows: task files are
    often sorted by label."""
    task = like.task if like is not None else task
    label_names = like.label_names if like is not None else None
    num_classes = _class_count(like)
    if task is None and not spec.startswith("tfds:"):
        task = jsonl_task_kind(spec)
    if task in TOKEN_SPAN_TASKS:
        data = _read_token_or_span(spec, task, label_names, num_classes, text_columns,
                                   label_column, replace_br)
    elif spec.startswith("tfds:"):
        name, _, tfds_split = spec[5:].partition(":")
        tfds_split = tfds_split or split
        if limit:
            tfds_split = f"{tfds_split}[:{limit}]"
        data = load_tfds(name, tfds_split, text_keys=text_columns,
                         label_key=label_column or "label")
        if replace_br:
            data = TaskData(tuple([_no_br(t) for t in column] for column in data.texts),
                            data.labels, data.task, data.label_names)
        return data
    else:
        data = load_task_file(spec, text_columns=text_columns, label_column=label_column,
                              task=task, label_names=label_names,
                              transform=_no_br if replace_br else None,
                              num_classes=num_classes)
    if limit and limit < len(data):
        rows = np.random.default_rng(seed).permutation(len(data))[:limit]
        data = data.subset(np.sort(rows))
    return data


def read_task_splits(train_spec, eval_spec=None, holdout=None, task=None, text_columns=None,
                     label_column=None, limit=None, replace_br=False, seed=0):
    """`(train, evaluation)`: `eval_spec` read like the training data, or a `holdout`
    fraction of the training data (split by `seed`), or None. `limit` applies to the
    training data only."""
    options = dict(text_columns=text_columns, label_column=label_column,
                   replace_br=replace_br, seed=seed)
    train = read_task(train_spec, task=task, limit=limit, **options)
    evaluation = None
    if eval_spec:
        evaluation = read_task(eval_spec, split="test", like=train, **options)
    elif holdout:
        train, evaluation = train.split(holdout, seed=seed)
    return train, evaluation
