"""Labelled text files (TSV / CSV / JSONL, optionally gzipped) to a `TaskData`.

`load_task_file` tells the format from the extension, finds the text and label
columns in the header (`TEXT_COLUMN_DEFAULTS`, `LABEL_COLUMN_DEFAULTS`), streams the
rows and hands the label column to `task_labels.parse_labels`.

Example:

>>> data = load_task_file("sst2/train.tsv")                      # doctest: +SKIP
>>> data.task, data.num_segments, data.num_classes                # doctest: +SKIP
('classification', 1, 2)
>>> pairs = load_task_file("stsb/dev.tsv")                       # doctest: +SKIP
>>> pairs.task, pairs.num_segments                               # doctest: +SKIP
('regression', 2)
"""

import csv
import gzip
import json
import os
import zlib

from keras_albert.training.task_labels import parse_labels
from keras_albert.training.task_records import TASKS
from keras_albert.training.task_records import TaskData

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

_FORMATS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl",
            ".json": "jsonl", ".ndjson": "jsonl"}


def task_file_format(path, delimiter=None):
    """'tsv', 'csv' or 'jsonl', from the extension (a `.gz` after it is fine)."""
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


def _readable_lines(handle, path):
    """The lines of `_open_text(path)`; bytes that are not UTF-8, or a gzip stream
    that is not one or is cut short, become one ValueError naming the file and line."""
    try:
        yield from handle
    except (UnicodeDecodeError, OSError, EOFError, zlib.error):
        problem = _first_unreadable_line(path)
        if problem is None:
            raise
        raise ValueError(problem) from None


def _first_unreadable_line(path):
    """`"FILE, line N: what"` for the first line that cannot be read, or None.

    The file is read again as bytes, line by line: the text layer decodes (and
    gunzips) a chunk ahead of the line it hands out, so its error has no line number.
    """
    number = 0
    try:
        opener = gzip.open if os.fspath(path).lower().endswith(".gz") else open
        with opener(path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as error:
                    return (f"{path}, line {number}: not UTF-8 text (byte "
                            f"0x{line[error.start]:02x} at byte {error.start + 1} of the "
                            f"line: {error.reason}); save the file as UTF-8.")
    except gzip.BadGzipFile as error:
        what = "not a gzip file" if str(error).startswith("Not a gzip") else "corrupt gzip data"
        return f"{path}, line {number + 1}: {what} ({error})."
    except (EOFError, zlib.error) as error:
        return f"{path}, line {number + 1}: corrupt gzip data ({error})."
    return None


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
        reader = csv.reader(_readable_lines(handle, path), delimiter=delimiter, strict=True)
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
        reader = csv.reader(_readable_lines(handle, path), delimiter=delimiter,
                            quoting=quoting)
        header = next(reader, None)
        yield header, None
        for row in reader:
            if row:
                yield reader.line_num, row


def json_rows(path):
    """Yields the first object's keys once, then `(line_number, object)`."""
    with _open_text(path) as handle:
        first = True
        for number, line in enumerate(_readable_lines(handle, path), 1):
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
    num_classes=None,
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
            labels are taken as ids, unless the names are ints themselves); without
            it string names are sorted. See `task_labels.parse_labels` for what
            labels mean and which are refused.
        delimiter: the field separator; by default tab for `.tsv`, comma for `.csv`.
        limit: read at most this many rows.
        transform: an optional callable applied to every text, e.g.
            `lambda t: t.replace("<br />", " ")` for IMDB.
        quoting: `"auto"` (CSV files are CSV-quoted; a TSV is read as CSV-quoted only
            when the whole file parses cleanly that way, as GLUE RTE does, and else
            with quote characters kept as text, as GLUE MRPC and STS-B need),
            `"csv"` or `"none"`.
        num_classes: the number of classes (labels, for multilabel) int ids must
            stay below when there are no `label_names`: the training data's, when
            this file is its evaluation data.

    Returns:
        A `TaskData`.

    Raises:
        FileNotFoundError: no such file. ValueError: an empty file, an unknown column
        (the message lists the header), or, naming the line: bytes that are not UTF-8
        or a corrupt gzip stream, a row with the wrong number of fields, a blank,
        unknown or unparsable label.
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
    file_format = task_file_format(path, delimiter)
    if file_format == "jsonl":
        rows = json_rows(path)
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
        labels, task, label_names = parse_labels(
            raw_labels, lines, task, label_names, path, label_column, num_classes)
    return TaskData(tuple(texts), labels, task or "classification", label_names)
