"""Every docstring example of the installed package runs and prints what it shows.

Modules are found by walking the package, so moved or new modules are covered without
editing this file. Examples that need a download, a network or files that are not
here say `# doctest: +SKIP`.
"""

import doctest
import importlib
import importlib.util
import pkgutil

import keras
import pytest

import keras_albert
from conftest import REPO_ROOT


def _package_paths():
    """`{package name: search path}` of `keras_albert` and the repository folders that
    setuptools installs inside it (`training/`, `optimizers/`). An editable install
    serves those from their own folders, which walking `keras_albert.__path__` misses."""
    paths = {"keras_albert": list(keras_albert.__path__)}
    for folder in sorted(REPO_ROOT.iterdir()):
        if not (folder.name.isidentifier() and (folder / "__init__.py").is_file()):
            continue
        spec = importlib.util.find_spec(f"keras_albert.{folder.name}")
        if spec is not None and spec.submodule_search_locations:
            paths[spec.name] = list(spec.submodule_search_locations)
    return paths


def _module_names():
    names = set()
    for package, path in _package_paths().items():
        names.add(package)
        names.update(info.name for info in pkgutil.walk_packages(path, package + "."))
    # A `__main__` module runs its program when imported.
    return sorted(name for name in names if name.rpartition(".")[2] != "__main__")


MODULES = _module_names()


def test_the_walk_finds_the_mapped_packages_and_the_building_blocks():
    expected = {"keras_albert.training", "keras_albert.optimizers.adafactor",
                "keras_albert.models.encoder", "keras_albert.presets",
                "keras_albert.tokenizers.preprocessor"}
    assert expected <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    # The finder keeps the module's own objects, not the names it imports.
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    policy = keras.config.dtype_policy()
    try:
        for test in sorted(tests, key=lambda test: test.name):
            runner.run(test, out=report.append)
    finally:
        # An example may change Keras's global state; later tests must not see it.
        keras.config.set_dtype_policy(policy)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} examples failed in {name}:\n" + "".join(report)
