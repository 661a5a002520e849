"""The user's module of models, imported for the library commands (``describe``, ``serve``...).

MODULE is an importable module name (the current directory is searched first, as modelkit
does) or a path to a ``.py`` file; every Model subclass it defines or imports with
``CONFIGURATIONS`` is part of the library.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiomodelkit._errors import ConfigError
from aiomodelkit._library import ModelLibrary

if TYPE_CHECKING:
    from types import ModuleType

    from aiomodelkit._settings import Settings

__all__ = ["import_models", "library_for"]


def import_models(target: str) -> ModuleType:
    """Import the module of models named ``target``: a dotted name or a ``.py`` file path.

    Raises:
        ConfigError: there is no such module or file.
    """
    path = Path(target)
    if target.endswith(".py") or os.sep in target:
        return _import_file(path)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        # Only the module asked for is a user error; a missing import inside it is a bug.
        if exc.name is not None and (target == exc.name or target.startswith(f"{exc.name}.")):
            raise ConfigError(f"cannot import models from {target!r}: no such module") from None
        raise


def _import_file(path: Path) -> ModuleType:
    if path.is_dir():
        raise ConfigError(f"cannot import models from {str(path)!r}: a directory, not a .py file")
    if not path.is_file():
        raise ConfigError(f"cannot import models from {str(path)!r}: no such file")
    try:
        with path.open("rb"):  # unreadable is the user's mistake; errors inside are bugs
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot import models from {str(path)!r}: {reason}") from None
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        if getattr(existing, "__file__", None) == str(path.resolve()):
            return existing
        raise ConfigError(
            f"cannot import {str(path)!r}: a module named {name!r} is already imported "
            "(rename the file, or pass a dotted module name)"
        )
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import models from {str(path)!r}: not a .py file")
    # The file's own directory comes first, so that it can import its sibling modules.
    sys.path.insert(0, str(path.resolve().parent))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic look their module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def library_for(module: str, required_models: list[str] | None, settings: Settings) -> ModelLibrary:
    """A (not yet entered) library of the models of ``module``.

    Args:
        module: the MODULE argument (see :func:`import_models`).
        required_models: the ``-r`` options; none means every model.
        settings: the command's settings.

    Raises:
        ConfigError: there is no such module or file.
    """
    return ModelLibrary(
        import_models(module), required_models=required_models or None, settings=settings
    )
