"""One installed name, imports in one direction, and a command line that starts fast.

Installed, the repository's `training/` and `optimizers/` folders are
`keras_albert.training` and `keras_albert.optimizers`; nothing else is added to the
user's environment. Checked for the editable install the tests run in and for a
wheel built from the sources and installed into a scratch virtual environment,
where import-linter also checks the layering contracts in `.importlinter`.
"""

import json
import os
import pathlib
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from conftest import REPO_ROOT

SOURCE_FOLDERS = {"keras_albert": "keras_albert", "training": "keras_albert/training",
                  "optimizers": "keras_albert/optimizers"}

IMPORT_CHECK = """
import json, sys
result = {}
for name in ("training", "optimizers"):
    try:
        __import__(name)
        result[name] = "imported"
    except ModuleNotFoundError:
        result[name] = "missing"
import keras_albert
import keras_albert.optimizers
import keras_albert.training.finetune
from keras_albert.optimizers import AdaFactor
from keras_albert.training.run_directory import RunDirectory
result["keras_albert"] = keras_albert.__file__
result["training"] += " " + keras_albert.training.finetune.__file__
result["tensorflow_loaded"] = "tensorflow" in sys.modules
print(json.dumps(result))
"""


def _clean_env(**extra):
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL", "TF_CONFIG")}
    env.update(extra)
    return env


def _run(command, cwd, **env):
    return subprocess.run(command, cwd=cwd, env=_clean_env(**env), capture_output=True,
                          text=True, timeout=300)


def _import_check(python, cwd):
    result = _run([python, "-c", IMPORT_CHECK], cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_editable_install_adds_one_name(tmp_path):
    found = _import_check(sys.executable, tmp_path)  # outside the repository
    assert found["optimizers"] == "missing"
    assert found["training"].startswith("missing ")
    assert found["training"].endswith(os.path.join("training", "finetune.py"))
    assert found["keras_albert"].startswith(str(REPO_ROOT))
    assert found["tensorflow_loaded"]  # a plain import registers everything with Keras


def _source_files():
    files = set()
    for folder, installed in SOURCE_FOLDERS.items():
        for path in (REPO_ROOT / folder).rglob("*.py"):
            if "__pycache__" not in path.parts:
                files.add(f"{installed}/{path.relative_to(REPO_ROOT / folder).as_posix()}")
    return files


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """A scratch venv holding only the built wheel; the dependencies come from this
    environment's site-packages through a .pth line (no download, no editable copy:
    .pth files inside that folder are not processed)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    # A copy of the sources: a stale build/ in the repository could leak old files.
    for name in ("setup.py", "README.md", *SOURCE_FOLDERS):
        path = REPO_ROOT / name
        if path.is_dir():
            subprocess.run(["cp", "-r", str(path), str(source / name)], check=True)
        else:
            (source / name).write_bytes(path.read_bytes())
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-q", "-w", str(work / "dist"), str(source)], work)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (work / "dist").glob("keras_albert-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   work).stdout.strip()
    pathlib.Path(purelib, "zz_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    installed = _run([sys.executable, "-m", "pip", "--python", python, "install",
                      "--no-deps", "-q", str(wheel)], work)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return {"wheel": wheel, "venv": venv, "python": python, "work": work}


def test_wheel_holds_one_top_level_name_and_every_module(wheel_venv):
    with zipfile.ZipFile(wheel_venv["wheel"]) as archive:
        names = archive.namelist()
        top_level = archive.read(next(n for n in names if n.endswith("top_level.txt")))
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {
        "keras_albert"}
    assert top_level.decode().split() == ["keras_albert"]
    missing = _source_files() - set(names)
    assert not missing, f"modules missing from the wheel: {sorted(missing)}"
    # The package ships no data files: vocabularies come with checkpoints or runs.
    assert not [n for n in names if ".dist-info/" not in n and not n.endswith(".py")]


def test_wheel_install_adds_one_name(wheel_venv):
    found = _import_check(wheel_venv["python"], wheel_venv["work"])
    site = str(wheel_venv["venv"])
    assert found["optimizers"] == "missing"
    assert found["training"].startswith("missing " + site)
    assert found["keras_albert"].startswith(site)


def test_imports_run_one_way(wheel_venv):
    """import-linter's contracts (.importlinter) on the installed package, where
    training/ and optimizers/ sit under keras_albert as the contracts name them."""
    check = ("import sys\nfrom importlinter.cli import lint_imports\n"
             f"sys.exit(lint_imports(config_filename={str(REPO_ROOT / '.importlinter')!r}))")
    result = _run([wheel_venv["python"], "-c", check], wheel_venv["work"])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


def _imported_modules(stderr):
    """Module names from `-X importtime` lines ('import time: self | cumulative | name')."""
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines()
            if line.startswith("import time:")}


@pytest.mark.parametrize("argv", [["--help"], ["finetune", "--help"], ["bench", "train", "-h"],
                                  ["export", "--help"]])
def test_help_imports_no_tensorflow(wheel_venv, argv):
    script = str(wheel_venv["venv"] / "bin" / "keras-albert")
    result = _run([script, *argv], wheel_venv["work"], PYTHONPROFILEIMPORTTIME="1")
    assert result.returncode == 0 and "usage: keras-albert" in result.stdout
    modules = _imported_modules(result.stderr)
    assert "keras_albert.cli" in modules
    assert not {m for m in modules if m.split(".")[0] in ("tensorflow", "keras")}


def test_commands_hold_back_tensorflow_startup_lines(wheel_venv):
    script = str(wheel_venv["venv"] / "bin" / "keras-albert")
    quiet = _run([script, "info", "albert_tiny", "--json"], wheel_venv["work"])
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["num_layers"] == 4
    assert quiet.stderr == ""
    bad = _run([script, "info", "albert_huge"], wheel_venv["work"])
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        bad.stderr.strip()] and "Unknown preset 'albert_huge'" in bad.stderr
    verbose = _run([script, "--verbose", "info", "albert_tiny", "--json"], wheel_venv["work"])
    assert verbose.returncode == 0 and verbose.stderr  # TensorFlow's own lines, as asked


def test_command_line_task_kinds_are_the_models_table():
    """The CLI lists the kinds without importing TensorFlow; they must be the table's."""
    from keras_albert.cli.options import TASK_KINDS as cli_kinds
    from keras_albert.models import TASK_KINDS

    assert cli_kinds == TASK_KINDS
