"""Constants and frozen values that every layer may import: limits, retries, timeouts, units.

Nothing here reads the environment or does I/O. :class:`~aiomodelkit.Settings` (the one
reader of the environment) turns into these values at the entry points (the CLI, a
``ModelLibrary`` or ``AssetsManager`` given no settings); the engine and the stores only
ever see the values.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_PREFIX",
    "DISK_THREADS",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "RANGES_PER_OBJECT",
    "RANGE_WRITE_BUFFER",
    "WRITE_BUFFER",
    "FetchOptions",
    "LibraryOptions",
    "MiB",
    "RetryPolicy",
    "StoreOptions",
    "TransferLimits",
    "format_size",
]

MiB = 1024 * 1024
_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def format_size(size: float) -> str:
    """A size in bytes for people, in binary units: the one unit style of every message.

    Example:
        >>> format_size(3), format_size(1536), format_size(24 * MiB), format_size(5 * 1024**4)
        ('3 B', '1.5 KiB', '24.0 MiB', '5.0 TiB')
    """
    if abs(size) < 1024:
        return f"{size:.0f} B"
    for unit in _UNITS:
        size /= 1024
        if abs(size) < 1024 or unit == _UNITS[-1]:
            break
    return f"{size:.1f} {unit}"


#: The key prefix modelkit uses when none is configured.
DEFAULT_PREFIX = "modelkit-assets"

#: Worker threads writing and hashing downloads at once (each write is ~1 MiB). Writes to
#: the page cache are memory copies: a few threads keep up with any network, and each extra
#: thread costs a malloc arena (peak RSS).
DISK_THREADS = 4
#: Bytes gathered from the network before one disk write (one worker-thread hop).
WRITE_BUFFER = 1 * MiB
#: The same for each range of a large object: 16 ranges in flight hold up to 16 of these
#: (plus what aiohttp buffers per connection), which bounds peak memory. Small on purpose:
#: the pieces are still in the CPU's caches when ``pwritev`` copies them into the page
#: cache. Client CPU per GiB on loopback, alternating runs (``benchmarks/cpu_per_byte.py``):
#: 1.20 s at 512 KiB, 1.73 s at 1 MiB; 256 and 128 KiB measured level with 512 KiB or below.
RANGE_WRITE_BUFFER = 256 * 1024
#: Ranges of one object beyond which the ranges grow (``TransferLimits.part_for``).
MAX_PARTS = 128
#: The largest range ``TransferLimits.part_for`` grows to.
MAX_PART_SIZE = 64 * MiB
#: Ranges of one object in flight at once (each also takes a connection of the budget).
#: A cloud object store serves one connection at a fraction of a VM's link (S3: ~90 MB/s
#: per connection against 10-25 Gbit/s), so one big object needs many connections; 16
#: fill a 10 Gbit/s link. Each also costs memory (aiohttp buffers up to ~0.75 MiB per
#: connection, plus our write buffer): 16 keep a 1 GiB download under 150 MiB of peak RSS,
#: and the in-order hasher trails 16 x 8 MiB, ~0.1 s of hashing after the last byte.
RANGES_PER_OBJECT = 16


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """Client tuning shared by every store.

    Attributes:
        max_connections: connection pool size; aiobotocore's default of 10 silently queues
            parallel downloads, so we default to 64.
        chunk_size: the most bytes one read of a response body returns (aiobotocore
            iterates 1 KiB chunks by default, ~100k awaits per 100 MiB), and aiohttp's read
            buffer for GCS and Azure. Reads over aiohttp return each piece as the socket
            delivered it, up to this.
        connect_timeout: seconds to open a connection.
        read_timeout: seconds a body may stay silent before the read fails as transient
            (an idle timeout, not a whole-transfer deadline).
        list_page_size: keys asked for per listing page (stores cap it at 1000).
        multipart_threshold: S3 uploads larger than this go in parts; raise it on servers
            without multipart uploads (a single PUT holds at most 5 GiB on AWS).
    """

    max_connections: int = 64
    chunk_size: int = 1 * MiB
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    list_page_size: int = 1000
    multipart_threshold: int = 64 * MiB

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if not 1 <= self.list_page_size <= 1000:
            raise ValueError("list_page_size must be between 1 and 1000")
        if self.multipart_threshold < 5 * MiB:
            raise ValueError("multipart_threshold must be at least 5 MiB (S3's smallest part)")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient store errors are retried: exponential backoff with full jitter.

    Attributes:
        max_attempts: tries per request (an object, one range of it, a metadata read).
        backoff: the first retry delay (seconds), doubled each time.
        backoff_max: the longest retry delay (seconds).
    """

    max_attempts: int = 5
    backoff: float = 0.25
    backoff_max: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff < 0 or self.backoff_max < 0:
            raise ValueError("retry delays cannot be negative")


@dataclass(frozen=True, slots=True)
class TransferLimits:
    """How much of the link, the store and the disk one manager's downloads may take.

    Attributes:
        connections: GETs and HEADs in flight at once, across every asset and object.
        disk_threads: worker threads writing and hashing at once.
        range_threshold: objects at least this big are fetched as concurrent ranges.
        part_size: the size of each range (larger for objects of over
            :data:`MAX_PARTS` parts: see :meth:`part_for`).
        ranges_per_object: ranges of one object in flight at once.
        adaptive: adapt the budget of data requests in flight to the store's throttling
            (see :mod:`aiomodelkit._adaptive`), ``connections`` being its ceiling.
        metadata_connections: with ``adaptive``, metadata reads (index, meta, HEAD) have
            their own budget of this many, on top of ``connections``.
        start_jitter: the first request waits a random 0 to this many seconds.
    """

    connections: int = 64
    disk_threads: int = DISK_THREADS
    range_threshold: int = 64 * MiB
    part_size: int = 8 * MiB
    ranges_per_object: int = RANGES_PER_OBJECT
    adaptive: bool = False
    metadata_connections: int = 8
    start_jitter: float = 0.0

    def __post_init__(self) -> None:
        for name in ("connections", "disk_threads", "range_threshold", "part_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.ranges_per_object < 1:
            raise ValueError("ranges_per_object must be at least 1")
        if self.metadata_connections < 0 or self.start_jitter < 0:
            raise ValueError("metadata_connections and start_jitter cannot be negative")

    def part_for(self, size: int) -> int:
        """The range size for an object of ``size`` bytes.

        ``part_size``, unless that makes more than :data:`MAX_PARTS` ranges: then the size
        that makes ``MAX_PARTS`` (whole MiB, at most :data:`MAX_PART_SIZE`). An 8 GiB object
        is 128 GETs of 64 MiB instead of 1,024 of 8 MiB: a fleet's request count falls 8
        times, and a range still resumes from its last byte written after an error.

        Example:
            >>> limits = TransferLimits()
            >>> limits.part_for(1024 * MiB) // MiB, limits.part_for(8192 * MiB) // MiB
            (8, 64)
        """
        if size <= self.part_size * MAX_PARTS:
            return self.part_size
        grown = -(-size // MAX_PARTS)  # ceil
        return max(self.part_size, min(MAX_PART_SIZE, -(-grown // MiB) * MiB))


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """What an assets manager does when asked for a version.

    Attributes:
        offline: never touch the network; serve only the cache.
        offline_fallback: when the store is unreachable, resolve a partial spec to the
            newest matching cached version.
        force_download: download again even a cached version.
        cache_locking: take a per-version file lock while downloading (saves duplicate
            work across processes; correctness never depends on it).
        fetch_deadline: an overall limit (seconds) for one fetch or fetch_many, or None.
        allow_unlocked: with a lock file, resolve a spec it does not cover from the store
            (with a warning) instead of refusing it.
    """

    offline: bool = False
    offline_fallback: bool = True
    force_download: bool = False
    cache_locking: bool = True
    fetch_deadline: float | None = None
    allow_unlocked: bool = False


@dataclass(frozen=True, slots=True)
class LibraryOptions:
    """How a model library loads.

    Attributes:
        lazy_loading: load nothing on entry; models load on first ``aget``.
        max_load_threads: plain-``def`` ``_load`` calls running at once in worker threads.
        max_loaded_models: at most this many models loaded at once, or None (no limit).
        max_loaded_bytes: at most this many bytes of loaded models at once, or None.
        watch_interval: seconds between checks for newer versions while serving, or None.
    """

    lazy_loading: bool = False
    max_load_threads: int = 16
    max_loaded_models: int | None = None
    max_loaded_bytes: int | None = None
    watch_interval: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_loaded_models", "max_loaded_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.watch_interval is not None and not self.watch_interval > 0:
            raise ValueError("watch_interval must be above 0")

    @property
    def bounded(self) -> bool:
        """Whether a memory budget is set: then models load on first use and the least
        recently used one is closed to make room."""
        return self.max_loaded_models is not None or self.max_loaded_bytes is not None
