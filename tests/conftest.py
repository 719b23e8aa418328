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


def subprocess_env(**extra):
    """The environment for a child Python process that imports this repository:
    TensorFlow backend, quiet logs, the repository on PYTHONPATH, no inherited
    TF_CONFIG (so a child is one worker only when a test says so), then `extra`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
               PYTHONPATH=str(REPO_ROOT))
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def free_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1 (all bound at once, so distinct)."""
    import socket

    sockets = []
    for _ in range(count):
        handle = socket.socket()
        handle.bind(("127.0.0.1", 0))
        sockets.append(handle)
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def write_classifier_run(directory, vocab, seed):
    """A folder as `keras-albert finetune` leaves it (`model.keras` and the vocabulary)
    holding an untrained two-class bert_tiny classifier on the WordPiece `vocab`."""
    from keras_albert import Encoder
    from keras_albert.conversion.huggingface import write_tokenizer
    from keras_albert.conversion.pretrained import tokenizer_from_file
    from keras_albert.models.task_kinds import task_model

    tokenizer = tokenizer_from_file(vocab)
    classifier = task_model(Encoder.from_preset(
        "bert_tiny", vocabulary_size=tokenizer.vocabulary_size, seed=seed),
        "classification", num_classes=2)
    directory.mkdir()
    classifier.save(str(directory / "model.keras"))
    write_tokenizer(tokenizer, str(directory))
    return directory
