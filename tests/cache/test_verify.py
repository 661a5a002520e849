"""``cache.verify`` and ``aiomodelkit cache verify``: every corruption found, then repaired."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from aiomodelkit import AssetNotFoundError, cache
from aiomodelkit._cli import app

from ._helpers import SPECS, Store

if TYPE_CHECKING:
    from pathlib import Path

runner = CliRunner()


def _corrupt(root: Path) -> None:
    """One of each damage: another hash, another size, a file missing, one too many, no marker."""
    clf = root / "models" / "clf"
    (clf / "1.0").write_bytes(b"C" + b"c" * 399)  # same size, another hash
    (clf / "0.1").write_bytes(b"c" * 199)  # truncated
    (root / "models" / "tok" / "0.0" / "sub" / "merges.txt").unlink()
    (root / "models" / "tok" / "0.0" / "stray.txt").write_text("added by hand")
    (clf / ".0.0.SUCCESS").unlink()  # interrupted


def test_an_intact_cache_is_ok(ours: Path) -> None:
    checks = cache.verify(ours)
    assert [(c.version.spec, c.status, c.problems) for c in checks] == [
        (spec, "ok", ()) for spec in SPECS
    ]


def test_files_are_rehashed_with_the_fast_checksum_else_sha256(ours: Path) -> None:
    assert {c.verified_with for c in cache.verify(ours)} == {"xxh3_128"}
    # A meta of an older aiomodelkit: SHA-256 only.
    kept = ours / ".meta" / "models" / "clf" / "1.0.meta"
    meta = json.loads(kept.read_bytes())
    del meta["xxh3_128"]
    kept.write_text(json.dumps(meta))
    (check,) = cache.verify(ours, ["models/clf:1.0"])
    assert (check.status, check.verified_with) == ("ok", "sha256")
    (ours / "models" / "clf" / "1.0").write_bytes(b"C" + b"c" * 399)
    (check,) = cache.verify(ours, ["models/clf:1.0"])
    assert check.problems == ("the file: its SHA-256 differs from the meta's",)
    assert check.verified_with == "sha256"


def test_every_corruption_is_found(ours: Path) -> None:
    _corrupt(ours)
    found = {c.version.spec: (c.status, c.problems) for c in cache.verify(ours)}
    assert found == {
        "models/clf:1.0": ("corrupt", ("the file: its XXH3-128 differs from the meta's",)),
        "models/clf:0.1": ("corrupt", ("the file: 199 bytes, expected 200",)),
        "models/clf:0.0": ("incomplete", ("no completion marker: an interrupted download",)),
        "models/tok:0.0": (
            "corrupt",
            ("sub/merges.txt is missing", "stray.txt is not in the meta"),
        ),
    }


def test_specs_choose_versions(ours: Path) -> None:
    assert [c.version.spec for c in cache.verify(ours, ["models/clf:0"])] == [
        "models/clf:0.1",
        "models/clf:0.0",
    ]
    assert [c.version.spec for c in cache.verify(ours, ["models/tok", "models/clf:1.0"])] == [
        "models/tok:0.0",
        "models/clf:1.0",
    ]
    with pytest.raises(AssetNotFoundError, match=r"no version 3\.1 of 'models/clf' in the cache"):
        cache.verify(ours, ["models/clf:3.1"])
    with pytest.raises(AssetNotFoundError, match="no version of 'models/nosuch' in the cache"):
        cache.verify(ours, ["models/nosuch"])


def test_a_modelkit_cache_has_nothing_to_check_against(theirs: Path) -> None:
    checks = cache.verify(theirs)
    assert {c.status for c in checks} == {"unchecked"}
    assert checks[0].problems == ("no stored checksums (written by modelkit)",)
    (theirs / "models" / "tok" / "0.0" / ".SUCCESS").unlink()  # modelkit was interrupted
    done = runner.invoke(app, ["cache", "verify", "--assets-dir", str(theirs)])
    assert done.exit_code == 1
    assert done.stderr.splitlines() == [
        "error: models/tok:0.0 is incomplete: no completion marker: an interrupted download"
    ]


def test_the_command_names_every_failed_version(ours: Path) -> None:
    _corrupt(ours)
    done = runner.invoke(app, ["cache", "verify", "--assets-dir", str(ours)])
    assert done.exit_code == 1
    assert done.stdout.splitlines() == [
        "models/clf:1.0\tcorrupt\tthe file: its XXH3-128 differs from the meta's",
        "models/clf:0.1\tcorrupt\tthe file: 199 bytes, expected 200",
        "models/clf:0.0\tincomplete\tno completion marker: an interrupted download",
        "models/tok:0.0\tcorrupt\tsub/merges.txt is missing",
    ]
    assert done.stderr.splitlines() == [
        "error: models/clf:1.0 is corrupt: the file: its XXH3-128 differs from the meta's",
        "error: models/clf:0.1 is corrupt: the file: 199 bytes, expected 200",
        "error: models/clf:0.0 is incomplete: no completion marker: an interrupted download",
        "error: models/tok:0.0 is corrupt: sub/merges.txt is missing (and 1 more)",
    ]


def test_repair_downloads_again_through_the_atomic_path(store: Store, ours: Path) -> None:
    _corrupt(ours)
    done = runner.invoke(
        app, ["cache", "verify", "--repair", "--assets-dir", str(ours), "--storage", store.url]
    )
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[-4:] == [f"{spec}\trepaired" for spec in SPECS]
    assert [c.status for c in cache.verify(ours)] == ["ok"] * 4
    assert not (ours / "models" / "tok" / "0.0" / "stray.txt").exists()
    assert cache.scan(ours).leftovers == ()  # the damaged copies were swapped out, then removed


def test_repair_needs_a_store(ours: Path) -> None:
    argv = ["cache", "verify", "--repair", "--assets-dir", str(ours)]
    done = runner.invoke(app, argv, env={"AIOMODELKIT_STORAGE": None})
    assert done.exit_code == 1
    assert done.stderr.startswith("error: no store configured")
