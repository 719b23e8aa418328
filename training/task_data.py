"""Fine-tuning data: labelled text files (and TFDS) to length-bucketed `tf.data` batches.

Three steps:

1. `load_task_file` (TSV / CSV / JSONL, optionally gzipped) or `load_tfds` read texts
   and labels into a `TaskData`: one or two lists of strings, the labels as a NumPy
   array and the task (`"classification"`, `"regression"` or `"multilabel"`).
2. `task_dataset` tokenizes every text once, packs it with the preprocessor's own
   `InputPacker` (so truncation and special tokens are exactly the preprocessor's) and
   batches examples of similar length together. Each batch is padded to the smallest
   of a few bucket boundaries that holds its longest row, so a compiled (XLA) training
   step sees at most `max_shapes` different shapes while short texts do not pay for
   padding up to `seq_length`.
3. `padding_efficiency` and `steps_per_epoch` report on the result.

Example:

>>> data = load_task_file("sst2/train.tsv")                      # doctest: +SKIP
>>> train, held_out = data.split(0.05)                           # doctest: +SKIP
>>> dataset = task_dataset(train, preprocessor, batch_size=32,
...                        shuffle=True, repeat=True)            # doctest: +SKIP
>>> model.fit(dataset, epochs=3,
...           steps_per_epoch=steps_per_epoch(dataset))          # doctest: +SKIP
"""

import csv
import dataclasses
import gzip
import json
import os
import re
import socket
import threading
import time

import numpy as np
import tensorflow as tf

TASKS = ("classification", "regression", "multilabel")

# Default text columns, tried in order (case-insensitively): pairs first, so that a
# file with `question` and `sentence` columns (QNLI) is read as pairs.
TEXT_COLUMN_DEFAULTS = (
    ("sentence1", "sentence2"),
    ("text_a", "text_b"),
    ("#1 String", "#2 String"),  # GLUE MRPC
    ("question1", "question2"),  # GLUE QQP
    ("question", "passage"),  # BoolQ
    ("question", "sentence"),  # GLUE QNLI
    ("premise", "hypothesis"),  # GLUE MNLI, SNLI
    ("sentence",),
    ("text",),
    ("text_a",),
    ("review",),
    ("content",),
    ("document",),
)
LABEL_COLUMN_DEFAULTS = ("label", "labels", "score", "quality", "gold_label", "target")

# Text keys of well-known TFDS datasets (what `load_tfds` reads without `text_keys`).
TFDS_TEXT_KEYS = {
    "imdb_reviews": ("text",),
    "glue/sst2": ("sentence",),
    "glue/cola": ("sentence",),
    "glue/mrpc": ("sentence1", "sentence2"),
    "glue/stsb": ("sentence1", "sentence2"),
    "glue/rte": ("sentence1", "sentence2"),
    "glue/wnli": ("sentence1", "sentence2"),
    "glue/qqp": ("question1", "question2"),
    "glue/qnli": ("question", "sentence"),
    "glue/mnli": ("premise", "hypothesis"),
    "super_glue/boolq": ("question", "passage"),
}
# Where TFDS fetches the raw files of those datasets from; prepared copies are on GCS.
_TFDS_HOSTS = {"imdb_reviews": "ai.stanford.edu", "glue": "dl.fbaipublicfiles.com"}
_GCS_HOST = "storage.googleapis.com"

_FORMATS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl",
            ".json": "jsonl", ".ndjson": "jsonl"}
_INT_PATTERN = re.compile(r"^[+-]?\d+$")


# --------------------------------------------------------------------------- TaskData


@dataclasses.dataclass
class TaskData:
    """Labelled texts for fine-tuning.

    Attributes:
        texts: a tuple of one list of strings (single texts) or two equally long lists
            (text pairs).
        labels: int class ids [N] (classification), float scores [N] (regression),
            float multi-hot [N, C] (multilabel), or None for unlabelled texts.
        task: `"classification"`, `"regression"` or `"multilabel"`.
        label_names: class names by id (classification / multilabel) when known.
    """

    texts: tuple
    labels: np.ndarray
    task: str = "classification"
    label_names: list = None

    def __post_init__(self):
        texts = self.texts
        if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
            raise TypeError("`texts` must be a tuple of one or two lists of strings.")
        if texts and isinstance(texts[0], str):  # one plain list of strings
            texts = (texts,)
        if not 1 <= len(texts) <= 2:
            raise ValueError(f"`texts` holds one or two text columns; got {len(texts)}.")
        self.texts = tuple(list(column) for column in texts)
        if len(self.texts) == 2 and len(self.texts[0]) != len(self.texts[1]):
            raise ValueError(
                f"The two text columns differ in length: {len(self.texts[0])} and "
                f"{len(self.texts[1])}."
            )
        if self.task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}; got {self.task!r}.")
        if self.labels is not None:
            dtype = np.int32 if self.task == "classification" else np.float32
            self.labels = np.asarray(self.labels, dtype)
            expected_rank = 2 if self.task == "multilabel" else 1
            if self.labels.ndim != expected_rank or len(self.labels) != len(self.texts[0]):
                raise ValueError(
                    f"{self.task} labels must have shape "
                    f"{'[N, C]' if expected_rank == 2 else '[N]'} with N = "
                    f"{len(self.texts[0])} texts; got shape {self.labels.shape}."
                )
        if self.label_names is not None:
            self.label_names = list(self.label_names)

    def __len__(self):
        return len(self.texts[0])

    @property
    def num_segments(self):
        """1 for single texts, 2 for pairs."""
        return len(self.texts)

    @property
    def num_classes(self):
        """Output units a model needs: classes, labels (multilabel), or 1 (regression)."""
        if self.task == "regression":
            return 1
        if self.task == "multilabel":
            if self.labels is not None:
                return int(self.labels.shape[1])
            return len(self.label_names)
        if self.label_names is not None:
            return len(self.label_names)
        if self.labels is None or not len(self.labels):
            raise ValueError("The number of classes is unknown: no labels, no label_names.")
        return int(self.labels.max()) + 1

    def subset(self, indices):
        """The examples at `indices` (in that order), as a new `TaskData`."""
        indices = np.asarray(indices, np.int64)
        texts = tuple([column[i] for i in indices] for column in self.texts)
        labels = None if self.labels is None else self.labels[indices]
        return TaskData(texts, labels, self.task, self.label_names)

    def split(self, fraction, seed=0):
        """A deterministic random holdout: returns `(rest, held_out)`.

        `held_out` has `round(fraction * len(self))` examples chosen at random with
        `seed`; both parts keep the original order of their examples.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"`fraction` must be in (0, 1); got {fraction!r}.")
        count = int(round(fraction * len(self)))
        if not 0 < count < len(self):
            raise ValueError(
                f"fraction={fraction} of {len(self)} examples leaves an empty part."
            )
        permutation = np.random.default_rng(seed).permutation(len(self))
        return self.subset(np.sort(permutation[count:])), self.subset(np.sort(permutation[:count]))


# --------------------------------------------------------------------------- files


def _file_format(path, delimiter):
    name = os.fspath(path).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    extension = os.path.splitext(name)[1]
    if extension in _FORMATS:
        return _FORMATS[extension]
    if delimiter is not None:
        return "csv" if delimiter == "," else "tsv"
    raise ValueError(
        f"Cannot tell the format of '{path}' from its extension: use .tsv, .csv or "
        ".jsonl (optionally .gz), or pass `delimiter=`."
    )


def _open_text(path):
    # utf-8-sig drops a byte order mark (GLUE MRPC's header starts with one).
    if os.fspath(path).lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


class _FieldSizeLimit:
    """Lets the csv module read long fields (whole documents) while reading a file."""

    def __enter__(self):
        self._previous = csv.field_size_limit()
        csv.field_size_limit(2**31 - 1)

    def __exit__(self, *exc):
        csv.field_size_limit(self._previous)


def _is_csv_quoted(path, delimiter, limit):
    """Whether a delimited file parses cleanly as CSV-quoted (RTE) or not (MRPC, STS-B).

    GLUE TSVs keep quote characters as text (a field may start with `"` and never
    close it), others quote fields CSV-style with doubled inner quotes. A strict CSV
    parse of the whole file that never errs and always yields the header's number of
    fields means the file is quoted; a file without quotes reads the same either way.
    """
    with _open_text(path) as handle, _FieldSizeLimit():
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return False
            rows = 0
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    return False
                rows += 1
                if limit is not None and rows >= limit:
                    break
        except csv.Error:
            return False
    return True


def _delimited_rows(path, delimiter, quoted):
    """Yields `(header, None)` once, then `(line_number, row)` for each row."""
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    with _open_text(path) as handle, _FieldSizeLimit():
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        header = next(reader, None)
        yield header, None
        for row in reader:
            if row:
                yield reader.line_num, row


def _json_rows(path):
    """Yields the first object's keys once, then `(line_number, object)`."""
    with _open_text(path) as handle:
        first = True
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error}).") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object per line.")
            if first:
                yield list(record), None
                first = False
            yield number, record
        if first:
            yield None, None


def _resolve_column(name, header, what, path):
    if isinstance(name, int) and not isinstance(name, bool):
        if not -len(header) <= name < len(header):
            raise ValueError(f"{what} column index {name} is out of range for '{path}' "
                             f"with columns {header}.")
        return header[name]
    if name in header:
        return name
    by_lower = {column.lower(): column for column in header}
    if isinstance(name, str) and name.lower() in by_lower:
        return by_lower[name.lower()]
    raise ValueError(f"Unknown {what} column {name!r} in '{path}'; its columns are {header}.")


def _default_columns(header, path, text_columns, label_column):
    lower = {column.lower(): column for column in header}
    if text_columns is None:
        for candidate in TEXT_COLUMN_DEFAULTS:
            if all(name.lower() in lower for name in candidate):
                text_columns = [lower[name.lower()] for name in candidate]
                break
        else:
            raise ValueError(
                f"Cannot tell which columns of '{path}' hold the text; its columns are "
                f"{header}. Pass `text_columns=` (one or two names)."
            )
    else:
        if isinstance(text_columns, (str, int)):
            text_columns = [text_columns]
        text_columns = list(text_columns)
        if not 1 <= len(text_columns) <= 2:
            raise ValueError(f"`text_columns` names one or two columns; got {text_columns}.")
        text_columns = [_resolve_column(c, header, "text", path) for c in text_columns]
    if label_column is None:
        for candidate in LABEL_COLUMN_DEFAULTS:
            if candidate in lower and lower[candidate] not in text_columns:
                label_column = lower[candidate]
                break
        else:
            raise ValueError(
                f"Cannot tell which column of '{path}' holds the labels; its columns are "
                f"{header}. Pass `label_column=` (or `label_column=False` for no labels)."
            )
    elif label_column is not False:
        label_column = _resolve_column(label_column, header, "label", path)
    return text_columns, label_column


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


def load_task_file(
    path,
    text_columns=None,
    label_column=None,
    task=None,
    label_names=None,
    delimiter=None,
    limit=None,
    transform=None,
    quoting="auto",
):
    """Reads labelled texts from a TSV, CSV or JSONL file with a header.

    `.tsv` / `.csv` / `.jsonl` (or `.json` with one object a line), each optionally
    `.gz`. Rows are streamed with the csv module (one JSON object a line for JSONL).

    Args:
        path: the file.
        text_columns: one or two column names (or indices). By default the first of
            `TEXT_COLUMN_DEFAULTS` the header has: `sentence1`+`sentence2`,
            `text_a`+`text_b`, MRPC's `#1 String`+`#2 String`, `question`+`passage`,
            ..., then `sentence`, `text`, ... (case-insensitive).
        label_column: the label column; by default the first of `label`, `labels`,
            `score`, `Quality` (MRPC), `gold_label`, `target`. `False`: no labels
            (`TaskData.labels` is None), e.g. to predict.
        task: `"classification"`, `"regression"` or `"multilabel"`; inferred when
            None: lists (JSONL) or `|`/`,`-separated labels -> multilabel; labels that
            are all ints -> classification with the ints as ids; other numbers (STS-B's
            `5.000`) -> regression; other strings -> classification, names sorted.
        label_names: class names by id. String labels are mapped through it (int
            labels are taken as ids); without it string names are sorted.
        delimiter: the field separator; by default tab for `.tsv`, comma for `.csv`.
        limit: read at most this many rows.
        transform: an optional callable applied to every text, e.g.
            `lambda t: t.replace("<br />", " ")` for IMDB.
        quoting: `"auto"` (CSV files are CSV-quoted; a TSV is read as CSV-quoted only
            when the whole file parses cleanly that way, as GLUE RTE does, and else
            with quote characters kept as text, as GLUE MRPC and STS-B need),
            `"csv"` or `"none"`.

    Returns:
        A `TaskData`.

    Raises:
        FileNotFoundError: no such file. ValueError: an empty file, an unknown column
        (the message lists the header), a row with the wrong number of fields or an
        unparsable label (the message gives the line number).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Task data file not found: '{path}'.")
    if task is not None and task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS} or None; got {task!r}.")
    if quoting not in ("auto", "csv", "none"):
        raise ValueError(f"`quoting` must be 'auto', 'csv' or 'none'; got {quoting!r}.")
    if limit is not None and limit < 1:
        raise ValueError(f"`limit` must be a positive int or None; got {limit!r}.")
    file_format = _file_format(path, delimiter)
    if file_format == "jsonl":
        rows = _json_rows(path)
    else:
        if delimiter is None:
            delimiter = "," if file_format == "csv" else "\t"
        if quoting == "auto":
            quoted = file_format == "csv" or _is_csv_quoted(path, delimiter, limit)
        else:
            quoted = quoting == "csv"
        rows = _delimited_rows(path, delimiter, quoted)

    header, _ = next(rows)
    if header is None:
        raise ValueError(f"Task data file '{path}' is empty (not even a header).")
    header = [str(column).strip() for column in header]
    text_columns, label_column = _default_columns(header, path, text_columns, label_column)
    if file_format == "jsonl":
        text_keys, label_key = text_columns, label_column
    else:
        text_keys = [header.index(column) for column in text_columns]
        label_key = header.index(label_column) if label_column is not False else None

    texts = [[] for _ in text_columns]
    raw_labels, lines = [], []
    for line, row in rows:
        if file_format == "jsonl":
            missing = [k for k in text_keys + [label_key] if k is not False and k not in row]
            if missing:
                raise ValueError(f"{path}, line {line}: the object lacks the keys {missing}.")
        elif len(row) != len(header):
            raise ValueError(
                f"{path}, line {line}: expected {len(header)} fields ({header}), got "
                f"{len(row)}. Is the delimiter or the quoting wrong (quoting='csv'/'none')?"
            )
        for column, key, name in zip(texts, text_keys, text_columns):
            text = row[key]
            if not isinstance(text, str):
                raise ValueError(
                    f"{path}, line {line}: the text in '{name}' is not a string: {text!r}."
                )
            column.append(transform(text) if transform is not None else text)
        if label_column is not False:
            raw_labels.append(row[label_key])
            lines.append(line)
        if limit is not None and len(texts[0]) >= limit:
            break
    if not texts[0]:
        raise ValueError(f"Task data file '{path}' has a header but no rows.")

    labels = None
    if label_column is not False:
        if task is None:
            task = _infer_task(raw_labels)
        if task == "classification":
            labels, label_names = _class_labels(raw_labels, lines, label_names, path, label_column)
        elif task == "regression":
            labels = _regression_labels(raw_labels, lines, path, label_column)
            label_names = None
        else:
            labels, label_names = _multilabel_labels(
                raw_labels, lines, label_names, path, label_column)
    return TaskData(tuple(texts), labels, task or "classification", label_names)


# --------------------------------------------------------------------------- TFDS


def _any_reachable(hosts, timeout):
    """Whether a TCP connection to one of `hosts` (port 443) opens within `timeout` s.

    The connections are tried at once in daemon threads, since name resolution
    ignores socket timeouts; whatever has not answered by then counts as unreachable.
    """
    answered = threading.Event()

    def connect(host):
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            answered.set()
        except OSError:
            pass

    threads = [threading.Thread(target=connect, args=(host,), daemon=True) for host in hosts]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    while not answered.is_set() and time.monotonic() < deadline:
        if not any(thread.is_alive() for thread in threads):
            break
        answered.wait(0.05)
    return answered.is_set()


def _tfds_prepared(tfds, name, data_dir, timeout):
    """`(builder, is_prepared)`, or `(None, False)` if that does not answer in time."""
    result = []

    def check():
        try:
            builder = tfds.builder(name, data_dir=data_dir)
            result.append((builder, builder.is_prepared()))
        except Exception as error:  # noqa: BLE001 - reported by the caller
            result.append(error)

    thread = threading.Thread(target=check, daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        return None, False
    if isinstance(result[0], Exception):
        raise result[0]
    return result[0]


def load_tfds(name, split, text_keys=None, label_key="label", timeout=10.0, data_dir=None):
    """Reads a TensorFlow Datasets text dataset into a `TaskData`.

    Needs `tensorflow-datasets` (`pip install 'keras-albert[tfds]'`). A dataset already
    prepared in `data_dir` is read offline; otherwise it is downloaded, after checking
    within `timeout` seconds that the download hosts answer, so that without network
    it fails quickly with a clear message instead of hanging.

    Args:
        name: e.g. `"imdb_reviews"`, `"glue/sst2"`, `"glue/mrpc"`, `"glue/stsb"`,
            `"glue/rte"` (these and `TFDS_TEXT_KEYS` know their text keys).
        split: e.g. `"train"`, `"validation"`, `"train[:10%]"`.
        text_keys: one or two feature names holding the texts (for other datasets).
        label_key: the label feature; a float label means regression (STS-B).
        timeout: seconds allowed for the reachability check.
        data_dir: the TFDS data directory (TFDS's default when None).
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "load_tfds needs tensorflow-datasets: pip install 'keras-albert[tfds]' "
            "(or read a local file with load_task_file)."
        ) from error
    if text_keys is None:
        if name not in TFDS_TEXT_KEYS:
            raise ValueError(
                f"Unknown text features for TFDS dataset {name!r}: pass `text_keys=`. "
                f"Known datasets: {sorted(TFDS_TEXT_KEYS)}."
            )
        text_keys = TFDS_TEXT_KEYS[name]
    if isinstance(text_keys, str):
        text_keys = (text_keys,)
    text_keys = tuple(text_keys)

    deadline = time.monotonic() + timeout
    builder, prepared = _tfds_prepared(tfds, name, data_dir, timeout)
    if not prepared:
        hosts = [_GCS_HOST]
        family = name.split("/")[0].split(":")[0]
        if family in _TFDS_HOSTS:
            hosts.append(_TFDS_HOSTS[family])
        if not _any_reachable(hosts, max(deadline - time.monotonic(), 0.0)):
            raise ConnectionError(
                f"cannot download TFDS dataset {name!r}: no network ({' and '.join(hosts)} "
                f"did not answer within {timeout:g} s) and it is not prepared in "
                f"{data_dir or 'the default TFDS data_dir'}; pass a local file with "
                "load_task_file(path) instead (TSV, CSV or JSONL), or point `data_dir` at "
                "a prepared copy."
            )
        if builder is None:
            builder = tfds.builder(name, data_dir=data_dir)
        builder.download_and_prepare()
    features = builder.info.features
    wanted = text_keys + ((label_key,) if label_key else ())
    missing = [key for key in wanted if key not in features]
    if missing:
        raise ValueError(f"TFDS dataset {name!r} has no features {missing}; it has "
                         f"{sorted(features.keys())}.")
    texts = [[] for _ in text_keys]
    labels = []
    for example in tfds.as_numpy(builder.as_dataset(split=split)):
        for column, key in zip(texts, text_keys):
            value = example[key]
            column.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
        if label_key:
            labels.append(example[label_key])
    if not label_key:
        return TaskData(tuple(texts), None, "classification", None)
    labels = np.asarray(labels)
    label_feature = features[label_key]
    if np.issubdtype(labels.dtype, np.floating):
        return TaskData(tuple(texts), labels.astype(np.float32), "regression", None)
    names = getattr(label_feature, "names", None)
    return TaskData(tuple(texts), labels.astype(np.int32), "classification",
                    list(names) if names else None)


# --------------------------------------------------------------------------- tf.data


@dataclasses.dataclass
class EncodedTexts:
    """Packed token ids of every example, without padding (what `encode_texts` returns).

    `word_ids[row_splits[i]:row_splits[i + 1]]` is example i's `[CLS] a [SEP] (b [SEP])`
    as `InputPacker` made it; `lengths[i]` its length and `first_lengths[i]` how many of
    its tokens have type id 0 (`[CLS] a [SEP]`).
    """

    word_ids: np.ndarray
    row_splits: np.ndarray
    lengths: np.ndarray
    first_lengths: np.ndarray
    pad_id: int
    seq_length: int


def _batch_packer(preprocessor):
    """The preprocessor's own `InputPacker`, padding to the batch's longest row."""
    from keras_albert.tokenizers import InputPacker

    config = dict(preprocessor.packer.get_config())
    config["pad_to"] = "batch"
    return InputPacker.from_config(config)


def encode_texts(data, preprocessor, chunk_size=2048):
    """Tokenizes and packs every text of `data` once (in chunks of `chunk_size`)."""
    texts = data.texts if isinstance(data, TaskData) else TaskData(data, None).texts
    tokenizer = preprocessor.tokenizer
    packer = _batch_packer(preprocessor)

    ids, lengths, first_lengths = [], [], []
    for start in range(0, len(texts[0]), chunk_size):
        chunk = [tf.constant(column[start:start + chunk_size], tf.string) for column in texts]
        outputs = packer([tokenizer(segment) for segment in chunk])  # eager: as fast
        mask = outputs["input_mask"].numpy().astype(bool)
        row_lengths = mask.sum(axis=1)
        type_ones = (outputs["input_type_ids"].numpy() * mask).sum(axis=1)
        ids.append(outputs["input_word_ids"].numpy()[mask])  # row-major: rows in order
        lengths.append(row_lengths)
        first_lengths.append(row_lengths - type_ones)
    lengths = np.concatenate(lengths).astype(np.int32)
    row_splits = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    return EncodedTexts(
        word_ids=np.concatenate(ids).astype(np.int32),
        row_splits=row_splits,
        lengths=lengths,
        first_lengths=np.concatenate(first_lengths).astype(np.int32),
        pad_id=int(packer.pad_id),
        seq_length=int(packer.seq_length),
    )


def choose_bucket_boundaries(lengths, seq_length, max_shapes=8, multiple=8):
    """At most `max_shapes` padded widths for `lengths`, the last one `seq_length`.

    The other boundaries are multiples of `multiple` picked by dynamic programming to
    minimise the padded tokens when every example is padded to the smallest boundary
    that holds it (quantiles of the lengths, but optimal).
    """
    if max_shapes < 1:
        raise ValueError(f"`max_shapes` must be >= 1; got {max_shapes}.")
    lengths = np.asarray(lengths, np.int64)
    candidates = np.arange(multiple, seq_length, multiple, dtype=np.int64)
    candidates = np.append(candidates, seq_length)
    # Examples per candidate: each goes to the smallest candidate that holds it.
    counts = np.bincount(np.searchsorted(candidates, lengths, side="left"),
                         minlength=len(candidates)).astype(np.float64)
    used = np.flatnonzero(counts)
    if max_shapes == 1 or not len(used):
        return [int(seq_length)]
    # Only candidates some example maps to are worth a boundary, plus seq_length last.
    keep = np.unique(np.append(used, len(candidates) - 1))
    widths = candidates[keep].astype(np.float64)
    counts = counts[keep]  # the other candidates hold no example
    n = len(widths)
    prefix = np.concatenate([[0.0], np.cumsum(counts)])
    # cost[k][j]: least padded tokens covering slots 0..j with k + 1 boundaries, last at j.
    steps = min(max_shapes, n)
    cost = np.full((steps, n), np.inf)
    parent = np.full((steps, n), -1, np.int64)
    cost[0] = widths * prefix[1:]
    for k in range(1, steps):
        for j in range(k, n):
            options = cost[k - 1, :j] + widths[j] * (prefix[j + 1] - prefix[1:j + 1])
            best = int(np.argmin(options))
            cost[k, j], parent[k, j] = options[best], best
    k = int(np.argmin(cost[:, n - 1]))
    chosen, j = [], n - 1
    while j >= 0 and k >= 0:
        chosen.append(int(widths[j]))
        j, k = parent[k, j], k - 1
    return sorted(chosen)


def _check_boundaries(bucket_boundaries, seq_length):
    boundaries = sorted({int(b) for b in bucket_boundaries})
    if not boundaries or boundaries[0] < 2 or boundaries[-1] > seq_length:
        raise ValueError(
            f"`bucket_boundaries` must be ints in [2, seq_length={seq_length}]; got "
            f"{list(bucket_boundaries)}."
        )
    if boundaries[-1] != seq_length:
        boundaries.append(seq_length)
    return boundaries


def _bucket_plan(buckets, batch_size, drop_remainder):
    """Batches as `tf.data.Dataset.group_by_window` forms them from the input order.

    Examples go to their bucket's queue in order; a full queue becomes a batch; at
    the end the partial queues follow in bucket order (or are dropped).
    """
    queues, batches = {}, []
    for index, bucket in enumerate(buckets.tolist()):
        queue = queues.setdefault(bucket, [])
        queue.append(index)
        if len(queue) == batch_size:
            batches.append(queue)
            queues[bucket] = []
    if not drop_remainder:
        batches.extend(queues[b] for b in sorted(queues) if queues[b])
    return batches


def task_dataset(
    data,
    preprocessor,
    batch_size=32,
    shuffle=False,
    seed=0,
    bucket_boundaries="auto",
    max_shapes=8,
    repeat=False,
    drop_remainder=False,
    sort_by_length=False,
    return_order=False,
):
    """Length-bucketed `(x, y)` batches of a `TaskData` for `fit`, `evaluate`, `predict`.

    Every text is tokenized once with `preprocessor.tokenizer` and packed with the
    preprocessor's `InputPacker` (`[CLS] a [SEP] (b [SEP])`, its truncation to
    `preprocessor.seq_length`), so the tokens are exactly `preprocessor(texts)`'s.
    Examples are then grouped by packed length and each batch is padded to the
    smallest bucket boundary that holds its longest row: at most `len(boundaries)`
    batch shapes (XLA compiles each once), and short texts are not padded to
    `seq_length`.

    `x` is the encoder input dict (int32 `input_word_ids`, `input_mask`,
    `input_type_ids`, [B, width]); `y` the labels: int32 [B] (classification), float32
    [B] (regression) or float32 [B, C] (multilabel). Unlabelled data yields `x` only.

    Order: with `shuffle=True` the examples are shuffled (deterministically for a
    `seed`, reshuffled each epoch with `repeat=True`) before bucketing. With
    `shuffle=False` the order is deterministic and kept within each bucket, but batches
    of different buckets interleave (a bucket's batch comes out when it fills; partial
    batches come last), so the output order is not the input order: pass
    `return_order=True` to get it. `sort_by_length=True` (for fast inference) sorts the
    examples by length before batching, and implies `return_order`.

    Args:
        data: a `TaskData`.
        preprocessor: a `keras_albert.tokenizers.Preprocessor` (its tokenizer,
            `seq_length` and truncation are used; its `pad_to` is not).
        batch_size: examples per batch.
        shuffle, seed: shuffle the examples, deterministically for a seed.
        bucket_boundaries: `"auto"` (at most `max_shapes` padded widths chosen from the
            length distribution, multiples of 8 and `seq_length` last), a list of
            widths (`seq_length` is appended if missing), or None to pad every batch
            to `seq_length`.
        max_shapes: the most batch widths `"auto"` may choose.
        repeat: repeat forever (each epoch reshuffled when `shuffle`).
        drop_remainder: drop partial batches (then each bucket drops its own).
        sort_by_length: batch the examples in order of length (inference).
        return_order: also return `order`, the example index of each output row, so
            that `restore_order(predictions, order)` puts predictions back in place.

    Returns:
        The `tf.data.Dataset`, or `(dataset, order)` with `sort_by_length` or
        `return_order`. Its cardinality is known (infinite with `repeat`); use
        `steps_per_epoch(dataset)` for the batches in one epoch.
    """
    if not isinstance(data, TaskData):
        raise TypeError(f"`data` must be a TaskData; got {type(data).__name__}.")
    if not len(data):
        raise ValueError("`data` has no examples.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
    if shuffle and (sort_by_length or return_order):
        raise ValueError("`sort_by_length` / `return_order` need shuffle=False: a "
                         "shuffled order changes every epoch.")
    encoded = encode_texts(data, preprocessor)
    seq_length = encoded.seq_length
    if bucket_boundaries is None:
        boundaries = [seq_length]
    elif isinstance(bucket_boundaries, str):
        if bucket_boundaries != "auto":
            raise ValueError(f"`bucket_boundaries` must be 'auto', None or a list; got "
                             f"{bucket_boundaries!r}.")
        boundaries = choose_bucket_boundaries(encoded.lengths, seq_length, max_shapes)
    else:
        boundaries = _check_boundaries(bucket_boundaries, seq_length)
    buckets = np.searchsorted(boundaries, encoded.lengths, side="left").astype(np.int64)

    word_ids = tf.RaggedTensor.from_row_splits(
        tf.constant(encoded.word_ids), tf.constant(encoded.row_splits), validate=False)
    lengths = tf.constant(encoded.lengths)
    first_lengths = tf.constant(encoded.first_lengths)
    widths = tf.constant(boundaries, tf.int32)
    labels = None if data.labels is None else tf.constant(data.labels)
    pad_id = encoded.pad_id

    def make_batch(indices):
        indices = tf.cast(indices, tf.int64)
        row_lengths = tf.gather(lengths, indices)
        longest = tf.reduce_max(row_lengths)
        width = tf.gather(widths, tf.searchsorted(widths, longest[tf.newaxis], side="left"))[0]
        ids = tf.gather(word_ids, indices).to_tensor(pad_id)
        ids = tf.pad(ids, [[0, 0], [0, width - tf.shape(ids)[1]]], constant_values=pad_id)
        positions = tf.range(width)[tf.newaxis, :]
        mask = positions < row_lengths[:, tf.newaxis]
        types = tf.logical_and(positions >= tf.gather(first_lengths, indices)[:, tf.newaxis],
                               mask)
        x = {
            "input_word_ids": tf.cast(ids, tf.int32),
            "input_mask": tf.cast(mask, tf.int32),
            "input_type_ids": tf.cast(types, tf.int32),
        }
        if labels is None:
            return x
        return x, tf.gather(labels, indices)

    counts = np.bincount(buckets, minlength=len(boundaries))
    if shuffle:
        num_batches = int(sum(
            c // batch_size if drop_remainder else -(-c // batch_size) for c in counts))
        bucket_ids = tf.constant(buckets)
        dataset = tf.data.Dataset.range(len(data)).shuffle(
            len(data), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.group_by_window(
            key_func=lambda index: tf.gather(bucket_ids, index),
            reduce_func=lambda key, window: window.batch(batch_size, drop_remainder),
            window_size=batch_size,
        )
        order = None
    else:
        if sort_by_length:
            ranked = np.argsort(encoded.lengths, kind="stable")
            plan = [ranked[i:i + batch_size] for i in range(0, len(ranked), batch_size)]
            if drop_remainder and plan and len(plan[-1]) < batch_size:
                plan.pop()
        else:
            plan = _bucket_plan(buckets, batch_size, drop_remainder)
        if not plan:
            raise ValueError(f"No batch of {batch_size} with drop_remainder=True: only "
                             f"{len(data)} examples.")
        num_batches = len(plan)
        order = np.concatenate(plan).astype(np.int64)
        dataset = tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(
            order, [len(batch) for batch in plan]))
    if num_batches == 0:
        raise ValueError(f"No batch of {batch_size} with drop_remainder=True: no bucket "
                         f"has that many of the {len(data)} examples.")
    dataset = dataset.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    # Kept for steps_per_epoch() and padding reports (a plain Python attribute).
    dataset.steps_per_epoch = num_batches
    # Packed tokens without padding in one epoch, for real-token throughput figures.
    dataset.real_tokens_per_epoch = int(encoded.lengths.sum())
    dataset.bucket_boundaries = list(boundaries)
    if sort_by_length or return_order:
        return dataset, order
    return dataset


def restore_order(predictions, order):
    """Puts rows that came out in `order` (from `task_dataset`) back in input order."""
    predictions = np.asarray(predictions)
    order = np.asarray(order)
    if len(predictions) != len(order):
        raise ValueError(f"{len(predictions)} predictions for {len(order)} examples.")
    restored = np.empty_like(predictions)
    restored[order] = predictions
    return restored


def steps_per_epoch(dataset):
    """The batches in one epoch of a `task_dataset` (also when it repeats)."""
    steps = getattr(dataset, "steps_per_epoch", None)
    if steps is not None:
        return int(steps)
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError("The dataset repeats forever and does not say its epoch length.")
    if cardinality == tf.data.UNKNOWN_CARDINALITY:
        raise ValueError("The dataset's cardinality is unknown; count its batches instead.")
    return cardinality


def padding_efficiency(dataset, num_batches=None):
    """Real tokens / all tokens (mask ones / mask size) over `num_batches` batches.

    1.0 means no padding. Reads the whole dataset when `num_batches` is None (it must
    then be finite).
    """
    if num_batches is None:
        if int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY:
            raise ValueError("The dataset repeats forever: pass `num_batches`.")
    else:
        dataset = dataset.take(num_batches)
    real = total = 0
    for element in dataset:
        x = element[0] if isinstance(element, tuple) else element
        mask = x["input_mask"].numpy()
        real += int(mask.sum())
        total += mask.size
    if not total:
        raise ValueError("The dataset yielded no batch.")
    return real / total


def batch_widths(dataset, num_batches=None):
    """The distinct padded widths of the batches (the shapes a compiled step sees)."""
    if num_batches is not None:
        dataset = dataset.take(num_batches)
    widths = set()
    for element in dataset:
        x = element[0] if isinstance(element, tuple) else element
        widths.add(int(x["input_word_ids"].shape[1]))
    return sorted(widths)


def _padding_report(argv=None):
    """`python -m keras_albert.training.task_data FILE VOCAB [--seq N]`: padding efficiency numbers."""
    import argparse
    import time

    from keras_albert.tokenizers import Preprocessor, WordPieceTokenizer

    parser = argparse.ArgumentParser(description=_padding_report.__doc__)
    parser.add_argument("file")
    parser.add_argument("vocab", help="a WordPiece vocab.txt")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-shapes", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data = load_task_file(args.file, limit=args.limit,
                          transform=lambda text: text.replace("<br />", " "))
    loaded = time.perf_counter()
    preprocessor = Preprocessor(WordPieceTokenizer(vocabulary=args.vocab), seq_length=args.seq)
    for name, kwargs in (("fixed", {"bucket_boundaries": None}),
                         ("bucketed, input order", {}),
                         ("bucketed, shuffled", {"shuffle": True})):
        began = time.perf_counter()
        dataset = task_dataset(data, preprocessor, batch_size=args.batch,
                               max_shapes=args.max_shapes, **kwargs)
        built = time.perf_counter()
        efficiency = padding_efficiency(dataset)
        print(f"{name:24s} efficiency {efficiency:.3f}  widths {batch_widths(dataset)}  "
              f"batches {steps_per_epoch(dataset)}  build {built - began:.1f} s")
    print(f"{len(data)} examples, read in {loaded - start:.1f} s; boundaries "
          f"{dataset.bucket_boundaries}")


if __name__ == "__main__":
    _padding_report()
