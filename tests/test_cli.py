"""The command line, against a local store."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aiomodelkit._cli import app

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    monkeypatch.setenv("AIOMODELKIT_STORAGE", root.as_uri())
    monkeypatch.setenv("AIOMODELKIT_ASSETS_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AIOMODELKIT_PUSHED_BY", "cli-tester")
    return root


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    (path / "sub").mkdir(parents=True)
    (path / "sub" / "w.bin").write_bytes(b"weights")
    return path


def test_publish_list_versions_fetch(store: Path, model: Path, tmp_path: Path) -> None:
    new = runner.invoke(app, ["assets", "new", str(model), "models/clf", "--yes"])
    assert new.exit_code == 0, new.output
    assert "published models/clf:0.0" in new.stdout
    for args in (["--bump-major"], ["--major", "0"], []):
        done = runner.invoke(app, ["assets", "update", str(model), "models/clf", "--yes", *args])
        assert done.exit_code == 0, done.output
    listed = runner.invoke(app, ["assets", "list"])
    assert listed.exit_code == 0
    assert "models/clf" in listed.stdout
    assert "1.1, 1.0, 0.1, 0.0" in listed.stdout
    versions = runner.invoke(app, ["assets", "versions", "models/clf"])
    assert versions.exit_code == 0
    assert versions.stdout.count("cli-tester") == 4
    fetched = runner.invoke(app, ["assets", "fetch", "models/clf:0[sub/w.bin]"])
    assert fetched.exit_code == 0, fetched.output
    spec, path, status = fetched.stdout.strip().split("\t")
    assert spec == "models/clf:0[sub/w.bin]"
    assert Path(path) == tmp_path / "cache" / "models" / "clf" / "0.1" / "sub" / "w.bin"
    assert Path(path).read_bytes() == b"weights"
    assert status == "7 B"
    again = runner.invoke(app, ["assets", "fetch", "models/clf:0.1"])
    assert again.stdout.strip().endswith("cached")


def test_messages_on_stderr_are_never_wrapped(tmp_path: Path, model: Path) -> None:
    # Not a terminal: rich would assume 80 columns and split the store URL across lines.
    deep = tmp_path.joinpath(*["a-long-folder-name"] * 6, "store")
    deep.mkdir(parents=True)
    args = ["assets", "new", str(model), "models/clf", "--storage", deep.as_uri()]
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    (line,) = dry.stderr.splitlines()
    assert len(line) > 80
    assert line.endswith(f" to {deep.as_uri()}")


def test_confirmation_and_dry_run(store: Path, model: Path) -> None:
    declined = runner.invoke(app, ["assets", "new", str(model), "models/clf"], input="n\n")
    assert declined.exit_code != 0
    dry = runner.invoke(app, ["assets", "new", str(model), "models/clf", "--dry-run"])
    assert dry.exit_code == 0
    assert "Would publish" in dry.output
    assert list(store.iterdir()) == []
    accepted = runner.invoke(app, ["assets", "new", str(model), "models/clf"], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert (store / "models" / "clf.versions").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["assets", "versions", "models/absent"], "no asset named 'models/absent' in file://"),
        (["assets", "versions", "models/../x"], "'..' segment"),
        (["assets", "fetch", "models/absent:1.0"], "no asset named 'models/absent' in file://"),
        (["assets", "update", "/nonexistent-path", "models/x", "--yes"], "nothing to publish"),
    ],
)
def test_user_errors_are_one_line(store: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert message in result.output
    assert result.output.startswith("error:")


def test_no_storage_configured(tmp_path: Path) -> None:
    result = runner.invoke(app, ["assets", "list"])
    assert result.exit_code == 1
    assert "no store configured" in result.output


def test_storage_option_beats_environment(store: Path, model: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    result = runner.invoke(
        app, ["assets", "new", str(model), "m", "--yes", "--storage", other.as_uri()]
    )
    assert result.exit_code == 0, result.output
    assert (other / "m.versions").is_file()
    assert not (store / "m.versions").exists()


def test_fetch_many_lock_and_offline(store: Path, model: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["assets", "new", str(model), "a", "--yes"]).exit_code == 0
    assert runner.invoke(app, ["assets", "new", str(model), "b", "--yes"]).exit_code == 0
    locked = runner.invoke(app, ["assets", "lock", "a:0", "b", "-o", str(tmp_path / "x.lock")])
    assert locked.exit_code == 0, locked.output
    assert "locked 2 spec(s)" in locked.stdout
    fetched = runner.invoke(
        app, ["assets", "fetch", "a:0", "b[sub/w.bin]", "--lock-file", str(tmp_path / "x.lock")]
    )
    assert fetched.exit_code == 0, fetched.output
    lines = fetched.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["a:0", "b[sub/w.bin]"]
    assert "2 asset(s), 0 from cache: 2 object(s)" in fetched.stderr
    offline = runner.invoke(app, ["assets", "fetch", "a", "c:1.0", "--offline"])
    assert offline.exit_code == 1
    assert "c:1.0 is not in the cache and offline mode is on" in offline.output
    assert "Traceback" not in offline.output


def test_a_spec_given_twice_fails_with_one_line(store: Path) -> None:
    result = runner.invoke(app, ["assets", "fetch", "models/nosuch", "models/nosuch"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: no asset named 'models/nosuch' in {store.as_uri()}"
    ]


@pytest.mark.parametrize(
    "command",
    [[], ["assets"], ["assets", "fetch"], ["assets", "update"], ["download-assets"], ["demo"]],
    ids=" ".join,
)
def test_help_shows_no_type_after_a_flag(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "╭" not in result.output  # plain help: nothing framed to wrap at 80 columns
    assert max(len(line) for line in result.output.splitlines()) <= 80
