"""docs/bad_input.md stays true: every row of its tables that shows a command is run
(in this process, `keras_albert.cli.main`), in a folder holding the files the page
describes, and must exit with the code and begin its last line of standard error with
the message the row gives. Every such command fails before training starts."""

import gzip
import json
import shlex
import shutil

import pytest

from conftest import REPO_ROOT, write_classifier_run

PAGE = REPO_ROOT / "docs" / "bad_input.md"


def _cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _unquote(cell):
    assert cell.startswith("`") and cell.endswith("`"), cell
    return cell[1:-1]


def _command_rows():
    """`(argv, exit code, message start)` of every table row whose command cell is a
    `keras-albert ...` command."""
    rows = []
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = _cells(line)
        if len(cells) != 4 or not cells[1].startswith("`keras-albert "):
            continue
        argv = shlex.split(_unquote(cells[1]))[1:]
        rows.append(pytest.param(argv, int(cells[2]), _unquote(cells[3]),
                                 id=f"{argv[0]}: {cells[0]}"))
    return rows


ROWS = _command_rows()


def test_the_page_has_its_rows_and_is_linked_from_the_readme():
    assert len(ROWS) >= 30
    assert "docs/bad_input.md" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def folder(data_dir, tmp_path_factory):
    """The files docs/bad_input.md names; nothing else exists there."""
    import keras_albert
    root = tmp_path_factory.mktemp("bad_input")
    with open(data_dir / "sst2" / "dev.tsv", encoding="utf-8") as handle:
        (root / "train.tsv").write_text("".join(next(handle) for _ in range(41)),
                                        encoding="utf-8")
    vocab = data_dir / "vocab" / "bert_uncased_vocab.txt"
    (root / "vocab.txt").write_bytes(vocab.read_bytes())
    with gzip.open(data_dir / "corpus" / "python311_docs.txt.gz", "rt",
                   encoding="utf-8") as handle:
        (root / "corpus.txt").write_text("".join(next(handle) for _ in range(400)),
                                         encoding="utf-8")
    (root / "tags.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in (
            {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]},
            {"tokens": ["in", "Paris"], "tags": ["O", "B-LOC"]},
            {"tokens": ["a", "b"], "tags": ["O"]})), encoding="utf-8")
    (root / "broken").mkdir()
    (root / "broken" / "model.keras").write_bytes(b"a model.keras cut short")
    keras_albert.register_with_keras()
    write_classifier_run(root / "run", vocab, seed=1)
    (root / "hub" / "encoder").mkdir(parents=True)
    return root


@pytest.mark.parametrize("argv, exit_code, message", ROWS)
def test_bad_input_answers_as_the_table_says(argv, exit_code, message, folder, monkeypatch,
                                             capsys):
    from keras_albert.cli import main

    monkeypatch.chdir(folder)
    before = sorted(path.name for path in folder.iterdir())
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's errors
        code = stop.code
    finally:
        # A refused run may have made its (empty) output folder; the next row's starts
        # afresh.
        shutil.rmtree(folder / "out", ignore_errors=True)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == exit_code, err[-2000:]
    assert lines and lines[-1].startswith(message), err[-2000:]
    assert "Traceback" not in err
    # Refused before any work: nothing was written.
    assert sorted(path.name for path in folder.iterdir()) == before
    assert not (folder / "run" / "summary.json").exists()
