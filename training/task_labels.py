"""Label columns of task files: raw values (strings, JSON values) to label arrays.

`parse_labels` infers the task when it is not given and maps the raw values to what
`TaskData` holds: int32 class ids, float32 scores, or a float32 multi-hot matrix.

What labels mean:

- classification: ints (`0`, `1`, ...) are class ids; other strings are class names,
  numbered in sorted order (`neg`, `pos` -> 0, 1). Ints of which some are negative
  (`-1`, `1`) cannot be ids, so they are names, numbered in numeric order (-> 0, 1).
  With `label_names` (evaluation data gets the training data's) a label must be one
  of the names, or an id below their number when the names are not ints themselves;
  with `num_classes` (evaluation data of a training file with ids) an id below it.
- regression: finite numbers.
- multilabel: JSON lists, or `|`- or `,`-separated strings, of names or ids as above;
  an empty list or field is an example without labels.

A blank label (an empty field, JSON null) is refused in a classification or
regression column. Every error names the file, the line and the column of the value
it rejects, in one line, so bad labels stop a run before any training.

Example:

>>> labels, task, names = parse_labels(["pos", "neg", "pos"], [2, 3, 4], None, None,
...                                    "reviews.tsv", "label")
>>> labels.tolist(), task, names
([1, 0, 1], 'classification', ['neg', 'pos'])
>>> parse_labels(["1", "-1"], [2, 3], None, None, "svm.tsv", "label")[2]
['-1', '1']
"""

import re

import numpy as np

_INT_PATTERN = re.compile(r"^[+-]?\d+$")


def parse_labels(raw_labels, lines, task, label_names, path, column, num_classes=None):
    """`(labels, task, label_names)` from one column's raw values.

    Args:
        raw_labels: the column's values, strings (TSV / CSV) or JSON values.
        lines: the line number of each value, for error messages.
        task: `"classification"`, `"regression"`, `"multilabel"`, or None to infer
            it from the labels that are not blank: lists or `|`/`,`-separated labels
            -> multilabel; all ints -> classification; other numbers -> regression;
            other strings -> classification.
        label_names: class names by id; labels must be among them (see the module
            docstring). Without it string names are sorted.
        path, column: the file and the column, for error messages.
        num_classes: without `label_names`, int ids must be below it (the training
            data's number of classes, for its evaluation data), and multilabel rows
            are this wide.

    Raises:
        ValueError: `"FILE, line N: ..."` for a blank label (classification,
        regression), an unknown class name, an id out of range, or a score that is
        not a finite number.
    """
    if task is None:
        task = _infer_task([value for value in raw_labels if not _is_blank(value)])
    if task == "classification":
        labels, label_names = _class_labels(raw_labels, lines, label_names, num_classes,
                                            path, column)
    elif task == "regression":
        labels = _regression_labels(raw_labels, lines, path, column)
        label_names = None
    else:
        labels, label_names = _multilabel_labels(raw_labels, lines, label_names,
                                                 num_classes, path, column)
    return labels, task, label_names


def _is_blank(value):
    return value is None or (isinstance(value, str) and not value.strip())


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


def _label_text(value, path, line, column):
    """One class label as text ("1" for JSON 1 or true); refuses blanks and lists."""
    if _is_blank(value):
        raise ValueError(f"{path}, line {line}: blank label in column '{column}'; every "
                         "example needs one.")
    if isinstance(value, (list, tuple, dict)):
        raise ValueError(f"{path}, line {line}: the label {value!r} in column '{column}' "
                         "is neither a class name nor an int id.")
    if isinstance(value, bool) or (isinstance(value, float) and value.is_integer()):
        value = int(value)
    return str(value).strip()


def _class_id(value, names, index, num_classes, path, line, column):
    """The id of one class label: a name in `index`, else an int id below the number
    of classes. Int names (`-1`, `1`) are only ever names, so `0` cannot mean both."""
    key = _label_text(value, path, line, column)
    if names is not None:
        if key in index:
            return index[key]
        if _INT_PATTERN.match(key):
            if any(_INT_PATTERN.match(name) for name in names):
                if str(int(key)) in index:  # "+1" or "01" for the name "1"
                    return index[str(int(key))]
            elif 0 <= int(key) < len(names):
                return int(key)
        raise ValueError(f"{path}, line {line}: unknown label {value!r} in column "
                         f"'{column}'; the label names are {names}.")
    if _INT_PATTERN.match(key) and 0 <= int(key) < num_classes:
        return int(key)
    raise ValueError(f"{path}, line {line}: unknown label {value!r} in column '{column}'; "
                     f"the labels are class ids 0 to {num_classes - 1}.")


def _class_labels(raw, lines, label_names, num_classes, path, column):
    if label_names is None and num_classes is None:
        strings = [_label_text(value, path, line, column) for value, line in zip(raw, lines)]
        if all(_INT_PATTERN.match(value) for value in strings):
            ids = [int(value) for value in strings]
            if min(ids, default=0) >= 0:  # class ids
                return np.asarray(ids, np.int32), None
            strings = ids  # names, in numeric order
        names = sorted(set(strings))
        index = {name: i for i, name in enumerate(names)}
        return (np.asarray([index[value] for value in strings], np.int32),
                [str(name) for name in names])
    names = index = None
    if label_names is not None:
        names = [str(name) for name in label_names]
        index = {name: i for i, name in enumerate(names)}
        label_names = list(label_names)
    ids = [_class_id(v, names, index, num_classes, path, n, column)
           for v, n in zip(raw, lines)]
    return np.asarray(ids, np.int32), label_names


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


def _split_multilabel(value, path, line, column):
    if isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int)) or _is_blank(item):
                raise ValueError(f"{path}, line {line}: the label {item!r} in the list in "
                                 f"column '{column}' is neither a label name nor an int id.")
        return [str(item).strip() for item in value]
    if value is None:
        return []
    value = str(value)
    separator = "|" if "|" in value else ","
    return [part.strip() for part in value.split(separator) if part.strip()]


def _multilabel_labels(raw, lines, label_names, num_classes, path, column):
    lists = [_split_multilabel(value, path, n, column) for value, n in zip(raw, lines)]
    names = None
    if label_names is not None or num_classes is not None:
        if label_names is not None:
            names = [str(name) for name in label_names]
            index = {name: i for i, name in enumerate(names)}
        else:
            index = None
        ids = [[_class_id(v, names, index, num_classes, path, n, column) for v in labels]
               for labels, n in zip(lists, lines)]
        names = None if label_names is None else list(label_names)
    elif all(_INT_PATTERN.match(v) for labels in lists for v in labels):
        ids = [[int(v) for v in labels] for labels in lists]
    else:
        names = sorted({v for labels in lists for v in labels})
        index = {name: i for i, name in enumerate(names)}
        ids = [[index[v] for v in labels] for labels in lists]
    if names is not None:
        num_labels = len(names)
    elif num_classes is not None:
        num_labels = num_classes
    else:
        num_labels = 1 + max((max(labels) for labels in ids if labels), default=-1)
    if num_labels <= 0:
        raise ValueError(f"'{path}': no labels at all in column '{column}'.")
    multi_hot = np.zeros((len(ids), num_labels), np.float32)
    for row, labels in enumerate(ids):
        for class_id in labels:
            if class_id < 0:
                raise ValueError(f"{path}, line {lines[row]}: negative label id {class_id}.")
            multi_hot[row, class_id] = 1.0
    return multi_hot, names
