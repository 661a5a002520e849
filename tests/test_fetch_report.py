"""The numbers a fetch command prints: each download counted once (issue 14, item 5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiomodelkit._cli._progress import FetchReport
from aiomodelkit._fetch import FetchedAsset
from aiomodelkit._spec import AssetSpec

if TYPE_CHECKING:
    from pathlib import Path


def test_a_version_shared_by_two_specs_is_counted_once_in_the_summary(tmp_path: Path) -> None:
    def fetched(spec: str, version: str, size: int, objects: int) -> FetchedAsset:
        parsed = AssetSpec.parse(spec)
        return FetchedAsset(parsed, version, tmp_path, size == 0, size, objects)

    report = FetchReport(
        (
            fetched("models/tok:0[vocab.txt]", "0.1", 300, 2),  # one download, two specs
            fetched("models/tok:0", "0.1", 300, 2),
            fetched("models/clf:1", "1.0", 50, 1),
            fetched("models/clf:1.0", "1.0", 0, 0),  # the same version, pinned, a cache hit
        ),
        elapsed=1.0,
    )
    assert (report.size, report.objects, report.hits) == (350, 3, 1)
