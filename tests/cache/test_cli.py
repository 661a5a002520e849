"""``aiomodelkit cache ls`` and ``cache prune``: what they print."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from typer.testing import CliRunner

from aiomodelkit._cli import app

from ._helpers import SPECS, set_last_used

if TYPE_CHECKING:
    from pathlib import Path

runner = CliRunner()
DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")


def _run(*argv: str) -> tuple[list[str], list[str]]:
    done = runner.invoke(app, list(argv))
    assert done.exit_code == 0, done.output
    return done.stdout.splitlines(), done.stderr.splitlines()


def test_ls_prints_a_table_with_totals(ours: Path) -> None:
    set_last_used(ours, "models/clf:0.0", 1_700_000_000)  # 2023-11-14 22:13 UTC
    lines, _ = _run("cache", "ls", "--assets-dir", str(ours))
    assert lines[3] == (
        "models/clf  0.0      100 B        1  2023-11-14 22:13  yes       no      aiomodelkit"
    )
    assert [DATE.sub("<date>", line) for line in lines] == [
        "ASSET       VERSION   SIZE  OBJECTS  LAST USED         COMPLETE  IN USE  WRITER",
        "models/clf  1.0      400 B        1  <date>  yes       no      aiomodelkit",
        "models/clf  0.1      200 B        1  <date>  yes       no      aiomodelkit",
        "models/clf  0.0      100 B        1  <date>  yes       no      aiomodelkit",
        "models/tok  0.0       30 B        2  <date>  yes       no      aiomodelkit",
        "total: 4 version(s) of 2 asset(s), 730 B in 5 object(s)",
    ]


def test_ls_of_a_modelkit_cache_sorted_by_size(theirs: Path) -> None:
    (theirs / "models" / "tok" / "0.0" / ".SUCCESS").unlink()
    lines, _ = _run("cache", "ls", "--assets-dir", str(theirs), "--sort", "size")
    assert [line.split()[:3] + line.split()[-3:] for line in lines[1:-1]] == [
        ["models/clf", "1.0", "400", "yes", "no", "modelkit"],
        ["models/clf", "0.1", "200", "yes", "no", "modelkit"],
        ["models/clf", "0.0", "100", "yes", "no", "modelkit"],
        ["models/tok", "0.0", "30", "no", "no", "modelkit"],
    ]
    assert lines[-1] == "total: 4 version(s) of 2 asset(s), 730 B in 5 object(s); 1 incomplete"


def test_ls_json(ours: Path) -> None:
    lines, _ = _run("cache", "ls", "--assets-dir", str(ours), "--json")
    data = json.loads("\n".join(lines))
    assert data["assets_dir"] == str(ours)
    assert data["read_only"] is False
    assert [f"{v['name']}:{v['version']}" for v in data["versions"]] == SPECS
    assert data["versions"][-1] | {"last_used": "?"} == {
        "name": "models/tok",
        "version": "0.0",
        "path": str(ours / "models" / "tok" / "0.0"),
        "size": 30,
        "objects": 2,
        "last_used": "?",
        "complete": True,
        "in_use": False,
        "written_by": "aiomodelkit",
        "is_directory": True,
    }
    assert data["total"] == {"versions": 4, "size": 730, "objects": 5}
    assert data["leftovers"] == []


def test_ls_of_an_empty_cache(tmp_path: Path) -> None:
    lines, _ = _run("cache", "ls", "--assets-dir", str(tmp_path))
    assert lines == ["total: 0 version(s) of 0 asset(s), 0 B in 0 object(s)"]


def test_prune_says_what_it_removes(ours: Path) -> None:
    set_last_used(ours, "models/clf:0.0", 1_700_000_000)
    lines, errors = _run("cache", "prune", "--assets-dir", str(ours), "--max-size", "650")
    assert lines == ["removed\tmodels/clf:0.0\t100 B"]
    assert errors == ["removed 1 version(s) and 0 leftover(s), 100 B; the cache holds 630 B"]
    lines, errors = _run(
        "cache", "prune", "--assets-dir", str(ours), "--older-than", "1h", "--dry-run"
    )
    assert lines == []
    assert errors == [
        "would remove 0 version(s) and 0 leftover(s), 0 B; the cache would hold 630 B"
    ]
    lines, _ = _run("cache", "prune", "--assets-dir", str(ours), "--keep-latest", "1", "--dry-run")
    assert lines == ["would remove\tmodels/clf:0.1\t200 B"]
    assert len(_run("cache", "ls", "--assets-dir", str(ours))[0]) == 5  # nothing removed
