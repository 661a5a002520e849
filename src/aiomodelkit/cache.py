"""The local cache, managed: list, verify and prune what it holds.

The same as ``aiomodelkit cache ls / verify / prune``::

    from datetime import timedelta

    from aiomodelkit import cache

    listing = cache.scan("/srv/cache")  # every version: size, objects, last used, state
    failed = [check for check in cache.verify("/srv/cache") if check.failed]
    report = cache.prune("/srv/cache", older_than=timedelta(days=30), keep_latest=2)

**Blocking, on purpose.** These functions only walk, hash, rename and delete local files:
there is nothing to wait for but the disk, so an async API would only hand the same calls to
a worker thread. They serve the CLI, cron jobs and scripts as they are; from async code, run
them in a worker thread, as the manager does for ``cache_max_bytes``::

    listing = await anyio.to_thread.run_sync(cache.scan, "/srv/cache")

**Repairing** a corrupt or incomplete version is downloading it again through the normal
atomic path (the copy is verified, then swapped in)::

    async with AssetsManager(assets_dir="/srv/cache", storage=url) as am:
        await am.fetch_many([check.version.spec for check in failed], force=True)

**What is never pruned:** a version a lock file given to ``keep_lock_files`` pins; a version
an open :class:`~aiomodelkit.AssetsManager` of a live process has served or published (it
is registered as in use until the manager closes, and a :class:`~aiomodelkit.ModelLibrary`
holds its manager open while it serves); a version being downloaded. Each removal renames the
version away first, so no reader sees half of one. A read-only cache can be scanned and
verified; ``prune`` refuses it with a :class:`~aiomodelkit.CacheError`. How use is recorded
(one ``flock`` per open manager, released by the kernel if the process dies; Windows records
nothing) is in ``aiomodelkit/_cache_os.py``.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> for version in ("1.0", "1.1"):  # two versions as modelkit caches them
    ...     folder = root / "models" / "clf" / version
    ...     folder.mkdir(parents=True)
    ...     _ = (folder / "weights.bin").write_bytes(b"w" * 10)
    ...     (folder / ".SUCCESS").touch()
    >>> listing = scan(root)
    >>> [(v.spec, v.size, v.objects, v.complete, v.written_by) for v in listing.versions]
    [('models/clf:1.1', 10, 1, True, 'modelkit'), ('models/clf:1.0', 10, 1, True, 'modelkit')]
    >>> [check.status for check in verify(root)]  # modelkit keeps no checksums
    ['unchecked', 'unchecked']
    >>> [v.spec for v in prune(root, keep_latest=1).removed]
    ['models/clf:1.0']
"""

from ._cache_prune import KeptVersion as KeptVersion
from ._cache_prune import PruneReport as PruneReport
from ._cache_prune import prune as prune
from ._cache_scan import CachedVersion as CachedVersion
from ._cache_scan import CacheScan as CacheScan
from ._cache_scan import Leftover as Leftover
from ._cache_scan import scan as scan
from ._cache_verify import VersionCheck as VersionCheck
from ._cache_verify import verify as verify

__all__ = [
    "CacheScan",
    "CachedVersion",
    "KeptVersion",
    "Leftover",
    "PruneReport",
    "VersionCheck",
    "prune",
    "scan",
    "verify",
]
