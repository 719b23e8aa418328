"""Shared pytest fixtures.

Real data (vocabularies, GLUE, the MiniLM checkpoint) is read from the shared data
folder beside the repository, never copied into it. Set ``KERAS_ALBERT_DATA`` to point
somewhere else.
"""

import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _data_dir():
    configured = os.environ.get("KERAS_ALBERT_DATA")
    if configured:
        return pathlib.Path(configured)
    return REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir():
    path = _data_dir()
    if not path.is_dir():
        raise FileNotFoundError(
            f"The shared data folder {path} does not exist; set KERAS_ALBERT_DATA to "
            "the folder holding vocab/, sst2/, models/ ..."
        )
    return path


def read_tsv_column(path, column, limit=None):
    """Reads one named column of a GLUE-style TSV file (header in the first line)."""
    rows = []
    with open(path, encoding="utf-8-sig") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        index = header.index(column)
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            rows.append(fields[index])
            if limit is not None and len(rows) >= limit:
                break
    return rows
