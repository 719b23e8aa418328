"""Label columns of task files: raw values (strings, JSON values) to label arrays.

`parse_labels` infers the task when it is not given and maps the raw values to what
`TaskData` holds: int32 class ids, float32 scores, or a float32 multi-hot matrix.
Errors name the file, the line and the column of the value they reject.

Example:

>>> labels, task, names = parse_labels(["pos", "neg", "pos"], [2, 3, 4], None, None,
...                                    "reviews.tsv", "label")
>>> labels.tolist(), task, names
([1, 0, 1], 'classification', ['neg', 'pos'])
"""

import re

import numpy as np

_INT_PATTERN = re.compile(r"^[+-]?\d+$")


def parse_labels(raw_labels, lines, task, label_names, path, column):
    """`(labels, task, label_names)` from one column's raw values.

    Args:
        raw_labels: the column's values, strings (TSV / CSV) or JSON values.
        lines: the line number of each value, for error messages.
        task: `"classification"`, `"regression"`, `"multilabel"`, or None to infer
            it: lists or `|`/`,`-separated labels -> multilabel; all ints ->
            classification with the ints as ids; other numbers -> regression; other
            strings -> classification.
        label_names: class names by id; string labels are mapped through it (int
            labels are taken as ids). Without it string names are sorted.
        path, column: the file and the column, for error messages.
    """
    if task is None:
        task = _infer_task(raw_labels)
    if task == "classification":
        labels, label_names = _class_labels(raw_labels, lines, label_names, path, column)
    elif task == "regression":
        labels = _regression_labels(raw_labels, lines, path, column)
        label_names = None
    else:
        labels, label_names = _multilabel_labels(raw_labels, lines, label_names, path, column)
    return labels, task, label_names


def _infer_task(raw_labels):
    """The task the raw labels (strings from TSV/CSV, JSON values) look like."""
    if any(isinstance(value, (list, tuple)) for value in raw_labels):
        return "multilabel"
    if all(isinstance(value, (bool, int)) for value in raw_labels):
        return "classification"
    if all(isinstance(value, (bool, int, float)) for value in raw_labels):
        return "regression"
    strings = [str(value).strip() for value in raw_labels]
    if all(_INT_PATTERN.match(value) for value in strings):
        return "classification"
    try:
        [float(value) for value in strings]
        return "regression"
    except ValueError:
        pass
    if any("|" in value or "," in value for value in strings):
        return "multilabel"
    return "classification"


def _class_id(value, names, index, path, line, column):
    """The id of one class label (a name or an int id)."""
    if isinstance(value, bool):
        value = int(value)
    key = value if isinstance(value, str) else str(value)
    key = key.strip()
    if index is not None and key in index:
        return index[key]
    if isinstance(value, int) or _INT_PATTERN.match(key):
        class_id = int(key)
        if names is None or 0 <= class_id < len(names):
            return class_id
    if isinstance(value, float) and value.is_integer():
        return _class_id(int(value), names, index, path, line, column)
    known = f"; the label names are {names}" if names is not None else ""
    raise ValueError(f"{path}, line {line}: unknown label {value!r} in column '{column}'{known}.")


def _class_labels(raw, lines, label_names, path, column):
    if label_names is not None:
        names = [str(name) for name in label_names]
        index = {name: i for i, name in enumerate(names)}
        ids = [_class_id(v, names, index, path, n, column) for v, n in zip(raw, lines)]
        return np.asarray(ids, np.int32), list(label_names)
    strings = [str(int(v) if isinstance(v, bool) else v).strip() for v in raw]
    if all(_INT_PATTERN.match(value) for value in strings):
        return np.asarray([int(value) for value in strings], np.int32), None
    names = sorted(set(strings))
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([index[value] for value in strings], np.int32), names


def _regression_labels(raw, lines, path, column):
    scores = np.empty(len(raw), np.float32)
    for i, (value, line) in enumerate(zip(raw, lines)):
        try:
            if isinstance(value, (list, tuple, dict)) or value is None:
                raise ValueError
            scores[i] = float(value)
        except ValueError:
            raise ValueError(
                f"{path}, line {line}: cannot read the score {value!r} in column "
                f"'{column}' as a number (task='regression')."
            ) from None
        if not np.isfinite(scores[i]):
            raise ValueError(f"{path}, line {line}: the score {value!r} is not finite.")
    return scores


def _split_multilabel(value):
    if isinstance(value, (list, tuple)):
        return [str(int(v) if isinstance(v, bool) else v).strip() for v in value]
    if value is None:
        return []
    value = str(value)
    separator = "|" if "|" in value else ","
    return [part.strip() for part in value.split(separator) if part.strip()]


def _multilabel_labels(raw, lines, label_names, path, column):
    lists = [_split_multilabel(value) for value in raw]
    if label_names is not None:
        names = [str(name) for name in label_names]
        index = {name: i for i, name in enumerate(names)}
        ids = [[_class_id(v, names, index, path, n, column) for v in labels]
               for labels, n in zip(lists, lines)]
        names = list(label_names)
    elif all(_INT_PATTERN.match(v) for labels in lists for v in labels):
        ids = [[int(v) for v in labels] for labels in lists]
        names = None
    else:
        names = sorted({v for labels in lists for v in labels})
        index = {name: i for i, name in enumerate(names)}
        ids = [[index[v] for v in labels] for labels in lists]
    num_labels = len(names) if names is not None else 1 + max(
        (max(labels) for labels in ids if labels), default=-1)
    if num_labels <= 0:
        raise ValueError(f"'{path}': no labels at all in column '{column}'.")
    multi_hot = np.zeros((len(ids), num_labels), np.float32)
    for row, labels in enumerate(ids):
        for class_id in labels:
            if class_id < 0:
                raise ValueError(f"{path}, line {lines[row]}: negative label id {class_id}.")
            multi_hot[row, class_id] = 1.0
    return multi_hot, names
