"""The demo's plain-text output: paragraphs wrapped to the console, and the timeline table.

Everything is laid out here as plain lines, so that it reads the same on a terminal, in a
pipe and in a log file (no trailing blanks, no re-wrapping by rich), at 80 columns::

                                   fetch  load  ready at
    model       asset               (ms)  (ms)      (ms)  timeline
    tokenizer   demo/tokenizer:0.0   562   311       873  ░░░░░░░█████
    ...
    fetch, load: how long each took; ready at: when the model was ready, from the
    start. timeline: 0 to 1703 ms, 77 ms a cell; ░ fetching, · waiting for
    dependencies, █ loading

Where the output cannot encode those glyphs, ASCII ones stand in (:meth:`Glyphs.for_encoding`).
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import Console

    from ._status import ModelStatus

__all__ = ["Glyphs", "critical_path", "dependencies_text", "paragraph", "print_timeline"]

#: The timeline column's narrowest and widest, in cells.
_MIN_BAR, _MAX_BAR = 12, 60
_GAP = "  "


@dataclass(frozen=True, slots=True)
class Glyphs:
    """The characters of the timeline and of arrows.

    Attributes:
        fetch: a timeline cell in which the asset was being fetched.
        wait: a cell in which the model waited for its dependencies.
        load: a cell in which ``_load`` ran.
        arrow: "leads to".
        needs: "depends on".
    """

    fetch: str = "░"
    wait: str = "·"
    load: str = "█"
    arrow: str = "→"
    needs: str = "←"

    @classmethod
    def for_encoding(cls, encoding: str) -> Glyphs:
        """The default glyphs for a UTF encoding, ASCII ones for anything else."""
        if encoding.lower().replace("-", "").startswith("utf"):
            return cls()
        return cls(fetch="-", wait=".", load="#", arrow="->", needs="<-")


def paragraph(console: Console, text: str, *, indent: int = 0, style: str | None = None) -> None:
    """Print ``text`` wrapped to the console's width (80 when it is not a terminal)."""
    margin = " " * indent
    wrapped = textwrap.fill(
        text,
        width=max(console.width, 40),
        initial_indent=margin,
        subsequent_indent=margin,
        break_long_words=False,  # a URL or a path stays whole
        break_on_hyphens=False,
    )
    console.print(wrapped, style=style, soft_wrap=True, markup=False, highlight=False)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def _overlaps(start: float | None, end: float | None, low: float, high: float) -> bool:
    return start is not None and end is not None and start < high and end > low


def _bar(status: ModelStatus, total: float, width: int, glyphs: Glyphs) -> str:
    """One row of the timeline: each cell shows what the model did during its slice of time.

    A cell shows the most telling thing that overlapped it: loading, then fetching, then
    waiting (from the asset on disk, or from the start for a model without an asset, until
    its load began). Before its fetch and once loaded, a model's cells are blank.
    """
    waited_from = status.fetch_finished if status.asset is not None else 0.0
    cells = []
    for index in range(width):
        low, high = index * total / width, (index + 1) * total / width
        if _overlaps(status.load_started, status.load_finished, low, high):
            cells.append(glyphs.load)
        elif _overlaps(status.fetch_started, status.fetch_finished, low, high):
            cells.append(glyphs.fetch)
        elif _overlaps(waited_from, status.load_started, low, high):
            cells.append(glyphs.wait)
        else:
            cells.append(" ")
    return "".join(cells).rstrip()


def print_timeline(
    console: Console, statuses: Mapping[str, ModelStatus], total: float, glyphs: Glyphs
) -> None:
    """Print one start as a labelled table (a row per model, a timeline column) and a legend.

    Args:
        console: where to print; the timeline column takes the width the others leave.
        statuses: the library's status of each model.
        total: how long the start took (the timeline's right end), in seconds.
        glyphs: the characters to draw with.
    """
    rows = [
        (
            key,
            str(status.asset) if status.asset is not None else "-",
            _ms(status.fetch_seconds),
            _ms(status.load_seconds),
            _ms(status.load_finished),
        )
        for key, status in statuses.items()
    ]
    # Two header lines: the name, then the unit under it.
    headers = [("", "model"), ("", "asset"), ("fetch", "(ms)"), ("load", "(ms)")]
    headers.append(("ready at", "(ms)"))
    widths = [
        max(len(top), len(unit), *(len(row[i]) for row in rows))
        for i, (top, unit) in enumerate(headers)
    ]
    fixed = sum(widths) + len(_GAP) * len(widths)
    bar_width = max(_MIN_BAR, min(_MAX_BAR, console.width - fixed))

    def line(cells: tuple[str, ...], last: str) -> str:
        left = [cell.ljust(width) for cell, width in zip(cells[:2], widths[:2], strict=True)]
        right = [cell.rjust(width) for cell, width in zip(cells[2:], widths[2:], strict=True)]
        return _GAP.join([*left, *right, last]).rstrip()

    show = functools.partial(console.print, soft_wrap=True, markup=False, highlight=False)
    show(line(tuple(top for top, _ in headers), ""), style="bold")
    show(line(tuple(unit for _, unit in headers), "timeline"), style="bold")
    for row, status in zip(rows, statuses.values(), strict=True):
        show(line(row, _bar(status, total, bar_width, glyphs)))
    paragraph(
        console,
        "fetch, load: how long each took; ready at: when the model was ready, from the "
        f"start. timeline: 0 to {total * 1000:.0f} ms, {total * 1000 / bar_width:.0f} ms a "
        f"cell; {glyphs.fetch} fetching, {glyphs.wait} waiting for dependencies, "
        f"{glyphs.load} loading",
        style="dim",
    )


def critical_path(statuses: Mapping[str, ModelStatus]) -> tuple[list[str], float]:
    """The chain of dependencies whose loads take longest, and their total, in seconds.

    With every asset cached, a concurrent start cannot be shorter than this chain.
    """

    @functools.cache
    def longest(key: str) -> tuple[float, tuple[str, ...]]:
        status = statuses[key]
        before = max((longest(dep) for dep in status.dependencies), default=(0.0, ()))
        return before[0] + (status.load_seconds or 0.0), (*before[1], key)

    seconds, chain = max(longest(key) for key in statuses)
    return list(chain), seconds


def dependencies_text(dependencies: Mapping[str, tuple[str, ...]], glyphs: Glyphs) -> str:
    """``sentiment ← tokenizer; classifier ← tokenizer, embeddings; ...``."""
    return "; ".join(
        f"{key} {glyphs.needs} {', '.join(deps)}" for key, deps in dependencies.items() if deps
    )
