"""aiomodelkit.integrations.ray_serve without Ray: its surface, its checks, its lazy import.

These run in the default test run (no ``ray`` marker, no Ray instance); what the deployment
does on a real Ray instance is in ``test_ray_serve.py``.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any, ClassVar

import pytest

from aiomodelkit import ConfigError, Model, UnknownModelError
from aiomodelkit.integrations import ray_serve
from aiomodelkit.integrations.ray_serve import deployment


class Echo(Model[str, str]):
    CONFIGURATIONS: ClassVar = {"a": {}, "b": {}, "c": {}}

    def _predict(self, item: str) -> str:
        return item


def test_the_public_surface() -> None:
    assert ray_serve.__all__ == ["ModelReplica", "deployment"]
    for name in ray_serve.__all__:
        assert getattr(ray_serve, name).__doc__, name


def test_importing_it_does_not_import_ray() -> None:
    code = (
        "import sys, aiomodelkit, aiomodelkit.integrations.ray_serve; "
        "sys.exit('ray' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_without_the_extra_it_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'aiomodelkit\[ray\]'"):
        deployment(Echo)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"preload": ["a", "z"]}, UnknownModelError, "'z'"),
        ({"preload": ["a", "b", "c"], "max_loaded_models": 2}, ConfigError, "do not fit"),
        ({"max_loaded_models": 0}, ConfigError, "at least 1"),
    ],
)
def test_the_configuration_is_checked_in_the_driver(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        deployment(Echo, **kwargs)
