"""Every gap of ``_backends.GAPS`` is proven against the running server, so the table can't rot.

Two tests use the probes of ``_probes``:

* ``test_declared_gap_is_real``: every (server, gap) pair of the table holds;
* ``test_no_undeclared_gap``: no server shows the gap of a cheap probe without declaring
  it, so a server upgrade that adds or fixes a gap changes the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ._backends import BACKENDS, GAPS, KINDS, Backend, Gap
from ._probes import PROBES

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet


def _declared() -> list[ParameterSet]:
    return [
        pytest.param(name, gap, id=f"{name}-{gap}")
        for name in BACKENDS
        for gap in sorted(GAPS[name])
    ]


def _undeclared() -> list[ParameterSet]:
    return [
        pytest.param(name, gap, id=f"{name}-{gap}")
        for name in BACKENDS
        for gap, probe in PROBES.items()
        if gap not in GAPS[name] and probe.cheap and KINDS[name] in probe.kinds
    ]


def test_every_gap_has_a_probe_and_every_server_a_kind() -> None:
    assert set(PROBES) == set(Gap)
    assert set(KINDS) == set(BACKENDS)


@pytest.mark.parametrize(("backend", "gap"), _declared(), indirect=["backend"])
def test_declared_gap_is_real(backend: Backend, gap: Gap) -> None:
    probe = PROBES[gap]
    assert backend.kind in probe.kinds, f"{gap} cannot be shown on a {backend.kind} server"
    assert probe.run(backend), f"{backend.name} no longer shows {gap}: update GAPS"


@pytest.mark.parametrize(("backend", "gap"), _undeclared(), indirect=["backend"])
def test_no_undeclared_gap(backend: Backend, gap: Gap) -> None:
    assert not PROBES[gap].run(backend), f"{backend.name} shows {gap}: declare it in GAPS"
