"""Every module opens with an example that runs; this keeps them true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import robaccia

MODULES = sorted(m.name for m in pkgutil.walk_packages(robaccia.__path__, "robaccia.")
                 if m.name != "robaccia.__main__")


@pytest.mark.parametrize("name", ["robaccia", *MODULES])
def test_module_docstring_examples_run(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    assert module.__doc__ and ">>>" in module.__doc__, f"{name} has no runnable example"
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
