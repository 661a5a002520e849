"""The public surface: every exported name exists, is documented, and __all__ stays sorted."""

from __future__ import annotations

import importlib.resources
from typing import TYPE_CHECKING

import pytest

import aiomodelkit
import aiomodelkit.stores
import aiomodelkit.testing

if TYPE_CHECKING:
    from types import ModuleType

PUBLIC = [aiomodelkit, aiomodelkit.stores, aiomodelkit.testing]


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_all_is_sorted_and_importable(module: ModuleType) -> None:
    names = list(module.__all__)
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert getattr(module, name) is not None, name


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_public_classes_and_functions_have_docstrings(module: ModuleType) -> None:
    for name in module.__all__:
        value = getattr(module, name)
        if callable(value) and not name.endswith("Callback"):
            assert value.__doc__, f"{module.__name__}.{name} has no docstring"


def test_package_is_typed() -> None:
    files = importlib.resources.files("aiomodelkit")
    assert files.joinpath("py.typed").is_file()


def test_version() -> None:
    assert aiomodelkit.__version__.count(".") == 2
