"""Install pinned npm packages for the test servers that only npm ships (s3rver, Azurite).

Each ``name@version`` is installed once per machine into a cache directory of its own,
``<cache>/<name>@<version>/`` (``<cache>`` is ``$XDG_CACHE_HOME/aiomodelkit/npm``, else
``~/.cache/aiomodelkit/npm``), and reused by every later start:

* ``npm install`` runs into a temporary directory beside the final one, which moves into
  place with one rename once the package is complete: a crash or a failed install never
  leaves a copy that looks installed;
* a file lock per package makes concurrent callers (pytest-xdist workers, two test runs)
  install once: the others wait, then find it installed;
* install scripts are not run (``--ignore-scripts``) and optional dependencies (native
  speed-ups, which would need those scripts) are left out: the servers here are pure
  JavaScript, and a test run should not execute code a dependency runs at install time.

Only the stdlib and filelock are used, so any synchronous fixture may call it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from filelock import FileLock

__all__ = [
    "NodeMissingError",
    "default_npm_cache",
    "node_tools",
    "npm_install",
]

#: Seconds an install may take (npm itself, and the wait for another process's install).
INSTALL_TIMEOUT = 600.0


class NodeMissingError(RuntimeError):
    """``node`` or ``npm`` is not on ``PATH``: a server from npm cannot run here."""


def node_tools() -> tuple[str, str]:
    """The paths of ``node`` and ``npm``.

    Raises:
        NodeMissingError: either is missing from ``PATH``.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = [name for name, path in (("node", node), ("npm", npm)) if path is None]
        verb = "is" if len(missing) == 1 else "are"
        raise NodeMissingError(
            f"this test server comes from npm and runs on Node.js, but {' and '.join(missing)} "
            f"{verb} not on PATH (Debian: apt-get install nodejs npm)"
        )
    return node, npm


def default_npm_cache() -> Path:
    """``$XDG_CACHE_HOME/aiomodelkit/npm``, else ``~/.cache/aiomodelkit/npm``.

    Read when called: a test suite that points ``HOME`` elsewhere per test should call it
    once, early, and pass the result on.
    """
    # A cache location for a test helper, not a library setting: Settings does not cover it.
    xdg = os.environ.get("XDG_CACHE_HOME")  # noqa: TID251
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "aiomodelkit" / "npm"


def npm_install(
    package: str,
    version: str,
    *,
    cache_dir: Path | None = None,
    timeout: float = INSTALL_TIMEOUT,
) -> Path:
    """Install ``package@version`` unless it is already there; return its npm prefix.

    The package itself is then at ``<prefix>/node_modules/<package>`` (its ``bin`` scripts
    at ``<prefix>/node_modules/.bin``).

    Args:
        package: the npm package name (``s3rver``, or a scoped ``@scope/name``).
        version: the exact version: a pin, never a range, so that every machine runs the
            same server.
        cache_dir: where installs live (default: :func:`default_npm_cache`).
        timeout: seconds allowed for ``npm install``, and for waiting on another process
            that is installing the same package.

    Raises:
        NodeMissingError: ``node`` or ``npm`` is missing.
        RuntimeError: ``npm install`` failed or installed another version (the message
            holds the end of npm's output).
        filelock.Timeout: another process held the install lock for over ``timeout``.
    """
    _, npm = node_tools()
    root = (cache_dir or default_npm_cache()).expanduser()
    slug = f"{package.replace('/', '+')}@{version}"
    target = root / slug
    if _installed(target, package, version):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{slug}.lock"), timeout=timeout):
        if _installed(target, package, version):  # installed while we waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=f"{slug}.incomplete-", dir=root))
        try:
            argv = [
                npm, "install", "--prefix", str(staging),
                "--no-audit", "--no-fund", "--no-save", "--no-package-lock",
                "--ignore-scripts", "--omit=dev", "--omit=optional", "--loglevel=error",
                f"{package}@{version}",
            ]  # fmt: skip
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise RuntimeError(
                    f"npm install {package}@{version} took over {timeout:.0f} s"
                ) from None
            if done.returncode != 0 or not _installed(staging, package, version):
                tail = (done.stdout + done.stderr)[-3000:]
                raise RuntimeError(
                    f"npm install {package}@{version} failed (exit {done.returncode}):\n{tail}"
                )
            shutil.rmtree(target, ignore_errors=True)  # an unusable leftover, if any
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _installed(prefix: Path, package: str, version: str) -> bool:
    """Whether ``prefix`` holds ``package`` at exactly ``version``."""
    manifest = prefix / "node_modules" / package / "package.json"
    try:
        return bool(json.loads(manifest.read_text(encoding="utf-8")).get("version") == version)
    except (OSError, ValueError, AttributeError):
        return False
