"""Every docstring example in the package runs: the modules are found, not listed by hand."""
import doctest
import importlib
from pathlib import Path

import pytest

import dirlib

ROOT = Path(dirlib.__file__).parent
WITH_EXAMPLES = sorted(
    "dirlib." + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in ROOT.rglob("*.py") if ">>> " in p.read_text())


def test_examples_are_found():
    # the discovery itself: the loss and method packages carry examples
    assert {"dirlib.losses.functional", "dirlib.methods", "dirlib.cli_args"} <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0
