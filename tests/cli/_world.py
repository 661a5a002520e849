"""The world the bad-input table runs in: a store, a warm cache, models, and hostile paths.

:class:`World` holds every path a row of the table may name, as ``{placeholders}``:

* ``{store}`` / ``{store_url}``: a local store holding ``models/c`` 0.0 (one file, ``w.bin``)
  and ``models/d`` 0.0 (a directory holding ``x.bin``);
* ``{cache}``: the cache, warm with ``models/c`` 0.0;
* ``{out}``: an empty directory where commands may write (lock files);
* ``{src}`` (a file), ``{src_dir}`` (a directory), ``{empty_dir}``: things to publish;
* ``{models}``, ``{missing_models}``, ``{badspec_models}``, ``{badversion_models}``: ``.py``
  files of models whose asset is ``models/c:0``, absent, unparsable, of a bad version;
* ``{lock}``: a valid lock file of ``models/c:0``; ``{closed}``: ``http://127.0.0.1:PORT``
  where nothing listens;
* hazards, which not every machine has: ``{read_only_dir}`` (an existing directory nobody
  may write to), ``{unreadable_file}`` and ``{unreadable_tree}`` (a directory holding a file
  nobody may read). As root, file modes are ignored, so these are places the kernel itself
  refuses (``/sys/kernel``, ``/proc/sys/vm/drop_caches``); a row needing a hazard the machine
  lacks is skipped with the reason.

:meth:`World.snapshot` is the file tree of the store, the cache and ``{out}`` with a hash of
each file's content: a command that fails must leave it unchanged.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from typer.testing import CliRunner

from aiomodelkit._cli import app

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["MODEL_TEMPLATE", "World", "build_world", "closed_port", "snapshot"]

runner = CliRunner()

MODEL_TEMPLATE = """
from typing import ClassVar

from aiomodelkit import Model


class M(Model[str, str]):
    CONFIGURATIONS: ClassVar = {{"m": {{"asset": {asset!r}}}}}

    def _predict(self, item: str) -> str:
        return item
"""


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def snapshot(*roots: Path) -> dict[str, str]:
    """Every path under ``roots``: its kind and, for a file, the SHA-256 of its content."""
    found: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            found[str(root)] = "absent"
            continue
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                kind = f"link {os.readlink(path)}"
            elif path.is_dir():
                kind = "dir"
            else:
                kind = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path)] = kind
    return found


@dataclass
class World:
    """The paths of one test's world; see the module docstring."""

    tmp: Path
    values: dict[str, str] = field(default_factory=dict)
    #: hazards this machine lacks, with the reason.
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.tmp / "store"

    @property
    def cache(self) -> Path:
        return self.tmp / "cache"

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    def fill(self, text: str) -> str:
        """``text`` with its ``{placeholders}`` replaced."""
        return text.format(**self.values)

    def fill_env(self, env: Mapping[str, str | None]) -> dict[str, str | None]:
        """An environment (None: unset the variable) with placeholders replaced."""
        return {k: None if v is None else self.fill(v) for k, v in env.items()}

    def snapshot(self) -> dict[str, str]:
        """The store, the cache and the output directory, as :func:`snapshot` sees them."""
        return snapshot(self.store, self.cache, self.out)


def build_world(tmp: Path) -> World:
    """Publish the store, warm the cache and write the models (the environment must point
    ``AIOMODELKIT_STORAGE`` at ``tmp/store`` and ``AIOMODELKIT_ASSETS_DIR`` at ``tmp/cache``)."""
    world = World(tmp)
    for folder in (world.store, world.out, tmp / "src_dir", tmp / "empty_dir"):
        folder.mkdir()
    (tmp / "src.bin").write_bytes(b"weights")
    (tmp / "src_dir" / "x.bin").write_bytes(b"x")
    for source, name in (("src.bin", "models/c"), ("src_dir", "models/d")):
        done = runner.invoke(app, ["assets", "new", str(tmp / source), name, "--yes"])
        assert done.exit_code == 0, done.output
    for args in (["fetch", "models/c:0.0"], ["lock", "models/c:0", "-o", str(tmp / "ok.lock")]):
        done = runner.invoke(app, ["assets", *args])
        assert done.exit_code == 0, done.output
    tag = uuid.uuid4().hex[:8]  # module names are global to the process: one per world
    models = {}
    for kind, asset in (
        ("models", "models/c:0"),
        ("missing_models", "models/nosuch:1"),
        ("badspec_models", "models/../x"),
        ("badversion_models", "models/c:1.2.3"),
    ):
        path = tmp / f"{kind}_{tag}.py"
        path.write_text(MODEL_TEMPLATE.format(asset=asset))
        models[kind] = str(path)
    world.values = {
        "tmp": str(tmp),
        "store": str(world.store),
        "store_url": world.store.as_uri(),
        "cache": str(world.cache),
        "out": str(world.out),
        "src": str(tmp / "src.bin"),
        "src_dir": str(tmp / "src_dir"),
        "empty_dir": str(tmp / "empty_dir"),
        "lock": str(tmp / "ok.lock"),
        "closed": f"http://127.0.0.1:{closed_port()}",
        **models,
    }
    _add_hazards(world)
    return world


def _add_hazards(world: World) -> None:
    """The read-only directory and the unreadable file and tree, where this machine has them."""
    if os.geteuid() != 0:
        read_only = world.tmp / "read_only"
        read_only.mkdir()
        read_only.chmod(0o555)
        unreadable = world.tmp / "unreadable.py"
        unreadable.write_text("x = 1\n")
        unreadable.chmod(0)
        tree = world.tmp / "unreadable_tree"
        tree.mkdir()
        (tree / "a.bin").write_bytes(b"a")
        (tree / "secret.bin").write_bytes(b"s")
        (tree / "secret.bin").chmod(0)
        world.values.update(
            read_only_dir=str(read_only), unreadable_file=str(unreadable), unreadable_tree=str(tree)
        )
        return
    # Root ignores file modes: use what the kernel refuses even to root.
    system = Path("/sys/kernel")
    if system.is_dir() and not _can_create_in(system):
        world.values["read_only_dir"] = str(system)
    else:
        world.missing["read_only_dir"] = "root, and /sys/kernel is writable or absent"
    drop_caches = Path("/proc/sys/vm/drop_caches")
    if _unreadable(drop_caches):
        world.values["unreadable_file"] = str(drop_caches)
        world.values["unreadable_tree"] = str(drop_caches.parent)
    else:
        reason = "root, and /proc/sys/vm/drop_caches is readable or absent"
        world.missing["unreadable_file"] = world.missing["unreadable_tree"] = reason


def _can_create_in(directory: Path) -> bool:
    probe = directory / f".aiomodelkit-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError:
        return False
    probe.rmdir()
    return True


def _unreadable(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except PermissionError:
        return True
    except OSError:
        return False
    return False
