"""The library commands: describe, list-assets, download-assets (and serve's failure path).

``serve`` itself runs as a real process in ``tests/web/test_serve.py``.
"""

from __future__ import annotations

import socket
import sys
import uuid
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from aiomodelkit._cli import app
from aiomodelkit._cli._models import import_models
from aiomodelkit.testing._process import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

runner = CliRunner()

MODELS = """
from typing import ClassVar

from aiomodelkit import Model


class Words(Model[str, list[str]]):
    CONFIGURATIONS: ClassVar = {
        "words": {"asset": "test/words:0[words.txt]"},
        "more_words": {"asset": "test/words:0", "model_settings": {"lower": True}},
    }

    def _predict(self, item: str) -> list[str]:
        return item.split()


class Count(Model[str, int]):
    CONFIGURATIONS: ClassVar = {
        "count": {"asset": "test/weights", "model_dependencies": {"tokens": "words"}},
        "const": {},
    }

    def _predict(self, item: str) -> int:
        return 1
"""


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local store holding test/words 0.0 and test/weights 0.0."""
    root = tmp_path / "store"
    root.mkdir()
    monkeypatch.setenv("AIOMODELKIT_STORAGE", root.as_uri())
    monkeypatch.setenv("AIOMODELKIT_ASSETS_DIR", str(tmp_path / "cache"))
    (tmp_path / "src" / "words").mkdir(parents=True)
    (tmp_path / "src" / "words" / "words.txt").write_text("red green")
    (tmp_path / "src" / "weights.bin").write_bytes(b"w" * 1000)
    for source, name in (("words", "test/words"), ("weights.bin", "test/weights")):
        done = runner.invoke(app, ["assets", "new", str(tmp_path / "src" / source), name, "-y"])
        assert done.exit_code == 0, done.output
    return root


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a fresh module of models in the current directory (``tmp_path``)."""
    name = f"models_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI adds the current directory
    yield name
    sys.modules.pop(name, None)


def test_describe(module: str) -> None:
    result = runner.invoke(app, ["describe", module, "-r", "count"])
    assert result.exit_code == 0, result.output
    assert "ModelLibrary (2 models)" in result.stdout
    assert "asset test/words:0[words.txt]" in result.stdout
    assert "depends on words as tokens" in result.stdout
    assert "more_words" not in result.stdout


def test_list_assets(module: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["list-assets", module])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "words\ttest/words:0[words.txt]",
        "more_words\ttest/words:0",
        "count\ttest/weights",
    ]
    # A path to a .py file works too, as does -r.
    path = str(tmp_path / f"{module}.py")
    result = runner.invoke(app, ["list-assets", path, "-r", "more_words", "-r", "const"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "more_words\ttest/words:0\n"


def test_download_assets(store: Path, module: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["download-assets", module])
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(spec, status) for spec, _, status in lines] == [
        ("test/words:0[words.txt]", "9 B"),
        ("test/words:0", "9 B"),  # the same version (one download, shared)
        ("test/weights", "1000 B"),
    ]
    assert lines[0][1] == str(tmp_path / "cache" / "test" / "words" / "0.0" / "words.txt")
    assert "3 asset(s), 0 from cache" in result.stderr
    again = runner.invoke(app, ["download-assets", module, "-r", "count"])
    assert again.exit_code == 0, again.output
    assert [line.split("\t")[2] for line in again.stdout.splitlines()] == ["cached", "cached"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["describe", "no_such_module_here"], "cannot import models from 'no_such_module_here'"),
        (["list-assets", "missing/models.py"], "no such file"),
        (["describe", "{module}", "-r", "cont"], "did you mean 'count' or 'const'?"),
        (["download-assets", "{module}"], "no store configured"),
    ],
)
def test_user_errors_are_one_line(module: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, [arg.format(module=module) for arg in args])
    assert result.exit_code == 1
    assert result.output.startswith("error:")
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_broken_module_is_not_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_models.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        import_models("broken_models")
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        import_models(str(tmp_path / "broken_models.py"))
    assert "broken_models" not in sys.modules


def test_serve_exits_when_a_model_fails_to_load(store: Path, module: str) -> None:
    # A VERSION override that the store does not have: the start fails, naming the model.
    port = str(free_port())
    result = runner.invoke(
        app,
        ["serve", module, "-r", "count", "--port", port],
        env={"AIOMODELKIT_TEST_WEIGHTS_VERSION": "9.9"},
    )
    assert result.exit_code == 1, result.output
    assert "listening on http://127.0.0.1:" in result.stderr
    assert "error:" in result.stderr
    assert "no version 9.9 of 'test/weights' in file://" in result.stderr
    assert "model='count'" in result.stderr
    assert "Traceback" not in result.output


def test_serve_refuses_a_busy_port(module: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = runner.invoke(app, ["serve", module, "-r", "const", "--port", port])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: cannot listen on 127.0.0.1:")
