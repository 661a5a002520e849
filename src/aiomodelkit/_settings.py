"""The one settings object, read from ``AIOMODELKIT_*`` variables in one place.

Precedence, highest first: explicit arguments > ``AIOMODELKIT_*`` > modelkit's ``MODELKIT_*``
(documented fallbacks, so a team can migrate without renaming its variables) > defaults.
Un-prefixed variables (``BUCKET``, ``ASSET``...) are never read, unlike modelkit.

=========================  =====================================================
``AIOMODELKIT_*``          modelkit fallback
=========================  =====================================================
``STORAGE``                ``MODELKIT_STORAGE_PROVIDER`` + ``MODELKIT_STORAGE_BUCKET``
                           + ``MODELKIT_STORAGE_PREFIX`` (default ``modelkit-assets``)
``ASSETS_DIR``             ``MODELKIT_ASSETS_DIR``
``VERSIONING``             ``MODELKIT_ASSETS_VERSIONING_SYSTEM``
``FORCE_DOWNLOAD``         ``MODELKIT_STORAGE_FORCE_DOWNLOAD`` (a real boolean here)
``ASSETS_DIR_OVERRIDE``    ``MODELKIT_ASSETS_DIR_OVERRIDE``
``LAZY_LOADING``           ``MODELKIT_LAZY_LOADING``
``<NAME>_FILE``/``_VERSION``  ``MODELKIT_<NAME>_FILE``/``_VERSION`` (see ``read_asset_overrides``)
=========================  =====================================================
"""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ._errors import ConfigError
from ._values import (
    DEFAULT_PREFIX,
    RANGES_PER_OBJECT,
    FetchOptions,
    LibraryOptions,
    MiB,
    RetryPolicy,
    StoreOptions,
    TransferLimits,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic.fields import FieldInfo

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Settings for stores, the cache and publishing.

    Example:
        >>> settings = Settings(storage="s3://bucket/team-a", assets_dir="/tmp/assets")
        >>> settings.storage
        's3://bucket/team-a'
    """

    model_config = SettingsConfigDict(
        env_prefix="AIOMODELKIT_", case_sensitive=False, extra="forbid", frozen=True
    )

    storage: str | None = Field(
        default=None,
        description="Store URL: file:///dir, s3://bucket[/prefix] or gs://bucket[/prefix]. "
        "None means cache-only.",
    )
    assets_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "aiomodelkit" / "assets",
        description="The local cache of assets.",
    )
    versioning: Literal["major_minor", "simple_date"] = "major_minor"
    pushed_by: str | None = Field(
        default=None, description="Identity recorded in published metas (default user@host)."
    )
    max_connections: int = Field(default=64, ge=1, le=4096)
    chunk_size: int = Field(default=1 * MiB, ge=4096)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0, description="Idle timeout per chunk.")
    multipart_threshold: int = Field(
        default=64 * MiB,
        ge=5 * MiB,
        le=5 * 1024 * MiB,
        description="S3 uploads larger than this many bytes go in parts. Raise it (up to "
        "5 GiB, one PUT's limit) on S3-compatible servers without multipart uploads.",
    )

    # -- fetching (the download engine) --
    offline: bool = Field(
        default=False, description="Never touch the network; serve only what is cached."
    )
    offline_fallback: bool = Field(
        default=True,
        description="When the store is unreachable, resolve partial specs to the newest "
        "matching cached version.",
    )
    force_download: bool = Field(default=False, description="Re-download even cached versions.")
    range_threshold: int = Field(
        default=64 * MiB, ge=MiB, description="Objects at least this big are split into ranges."
    )
    range_part_size: int = Field(default=8 * MiB, ge=MiB, description="The size of each range.")
    range_concurrency: int = Field(
        default=RANGES_PER_OBJECT,
        ge=1,
        description="Ranges of one object downloaded at once (each takes a connection).",
    )
    adaptive_concurrency: bool = Field(
        default=True,
        description="Adapt the data requests in flight to what the store serves (slow "
        "start, halved on 503 SlowDown / 429 / timeouts, collapse detection), between 2 "
        "and max_connections; off keeps a fixed max_connections.",
    )
    metadata_connections: int = Field(
        default=8,
        ge=0,
        le=64,
        description="With adaptive_concurrency, index/meta/HEAD reads' own budget, on top "
        "of max_connections, so they never queue behind big transfers (0: shared).",
    )
    start_jitter: float = Field(
        default=0.0,
        ge=0,
        le=600,
        description="The first store request waits a random 0 to this many seconds: a "
        "fleet that starts at once spreads its first requests.",
    )
    max_attempts: int = Field(default=5, ge=1, le=100, description="Tries per object or part.")
    retry_backoff: float = Field(default=0.25, ge=0, description="First retry delay (s).")
    retry_backoff_max: float = Field(default=10.0, ge=0)
    fetch_deadline: float | None = Field(
        default=None, gt=0, description="Overall limit (s) for one fetch or fetch_many."
    )
    cache_locking: bool = Field(
        default=True,
        description="Take a per-version file lock while downloading, so processes sharing "
        "a cache download once. Correctness never depends on it; turn it off where file "
        "locks hang (some network filesystems).",
    )
    cache_max_bytes: int | None = Field(
        default=None,
        ge=0,
        description="Keep the cache at most this many bytes: after each download is published, "
        "the least recently used versions go, except versions in use by an open manager of a "
        "live process, pinned by the lock file, or being downloaded. Off by default.",
    )
    lock_file: Path | None = Field(
        default=None,
        description="A lock file of resolved versions to honour; it must exist, and a spec "
        "it does not cover is refused (see allow_unlocked).",
    )
    allow_unlocked: bool = Field(
        default=False,
        description="With a lock file, resolve a spec it does not cover from the store, with a "
        "warning, instead of refusing it.",
    )
    allow_unsafe_publish: bool = Field(
        default=False,
        description="Publish to a store that accepts conditional writes but ignores them "
        "(some S3/GCS-compatible servers), under a best-effort lease with a read-back that "
        "detects an overwrite. Without it such a store is refused: two publishers at once could "
        "overwrite each other's version.",
    )

    # -- the model library --
    lazy_loading: bool = Field(
        default=False, description="Load no model on entry; ModelLibrary.aget loads on first use."
    )
    assets_dir_override: Path | None = Field(
        default=None,
        description="Searched as <dir>/<name>/<version>[/<sub-part>] before the store.",
    )
    max_load_threads: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Plain-def _load calls running at once, in worker threads. Loads mostly "
        "release the GIL (file reads, numpy, torch), so more than the core count pays; "
        "lower it to bound the memory of many large models loading at once.",
    )
    max_loaded_models: int | None = Field(
        default=None,
        ge=1,
        description="Keep at most this many models loaded: models load on first use "
        "(ModelLibrary.aget) and the least recently used one is closed to make room.",
    )
    max_loaded_bytes: int | None = Field(
        default=None,
        ge=1,
        description="Keep at most this many bytes of models loaded (a model's memory_bytes(), "
        "else its asset's size on disk); models load on first use, as for max_loaded_models.",
    )
    watch_interval: float | None = Field(
        default=None,
        gt=0,
        description="Seconds between checks, while a library serves, for newer versions of "
        "partial specs (name, name:1): one conditional read of each asset's index; a newer "
        "version is fetched, loaded and swapped in without a failed request. Off by default.",
    )

    asset_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Per-asset AIOMODELKIT_<NAME>_FILE / _VERSION variables (and modelkit's "
        "MODELKIT_ fallbacks) by upper-case name, read from the environment when the settings "
        "are built; a library given these settings reads no environment of its own.",
    )

    @field_validator("assets_dir", "assets_dir_override", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Build settings from ``overrides`` (None values ignored) and the environment.

        Raises:
            ConfigError: a value is invalid; the message names the setting and variable.
        """
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])} (AIOMODELKIT_"
                f"{str(err['loc'][0]).upper() if err['loc'] else ''}): {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"invalid settings: {problems}") from None

    def store_options(self) -> StoreOptions:
        """The client tuning these settings describe."""
        metadata = self.metadata_connections if self.adaptive_concurrency else 0
        return StoreOptions(
            max_connections=self.max_connections + metadata,  # metadata's budget on top
            chunk_size=self.chunk_size,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            multipart_threshold=self.multipart_threshold,
        )

    def retry_policy(self) -> RetryPolicy:
        """How transient store errors are retried."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff=self.retry_backoff,
            backoff_max=self.retry_backoff_max,
        )

    def transfer_limits(self) -> TransferLimits:
        """How much of the link, the store and the disk downloads may take."""
        return TransferLimits(
            connections=self.max_connections,
            range_threshold=self.range_threshold,
            part_size=self.range_part_size,
            ranges_per_object=self.range_concurrency,
            adaptive=self.adaptive_concurrency,
            metadata_connections=self.metadata_connections,
            start_jitter=self.start_jitter,
        )

    def fetch_options(self) -> FetchOptions:
        """What an assets manager does when asked for a version."""
        return FetchOptions(
            offline=self.offline,
            offline_fallback=self.offline_fallback,
            force_download=self.force_download,
            cache_locking=self.cache_locking,
            fetch_deadline=self.fetch_deadline,
            allow_unlocked=self.allow_unlocked,
        )

    def library_options(self) -> LibraryOptions:
        """How a model library loads."""
        return LibraryOptions(
            lazy_loading=self.lazy_loading,
            max_load_threads=self.max_load_threads,
            max_loaded_models=self.max_loaded_models,
            max_loaded_bytes=self.max_loaded_bytes,
            watch_interval=self.watch_interval,
        )

    def identity(self) -> str:
        """Who is publishing: ``pushed_by``, else ``user@host``."""
        if self.pushed_by:
            return self.pushed_by
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (some containers)
            user = "unknown"
        return f"{user}@{socket.gethostname()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        explicit = getattr(init_settings, "init_kwargs", {})
        return (init_settings, env_settings, _FallbackSource(settings_cls, explicit=explicit))


#: modelkit's variables that map one to one onto a setting. MODELKIT_STORAGE_FORCE_DOWNLOAD
#: is parsed as a real boolean: modelkit treats any non-empty value, "False" too, as true.
_MODELKIT_NAMES = {
    "MODELKIT_ASSETS_DIR": "assets_dir",
    "MODELKIT_ASSETS_VERSIONING_SYSTEM": "versioning",
    "MODELKIT_ASSETS_DIR_OVERRIDE": "assets_dir_override",
    "MODELKIT_LAZY_LOADING": "lazy_loading",
    "MODELKIT_STORAGE_FORCE_DOWNLOAD": "force_download",
}


class _FallbackSource(EnvSettingsSource):
    """Reads modelkit's ``MODELKIT_*`` names for the settings that have an equivalent, and
    the per-asset override variables (whose names depend on asset names, so they cannot be
    fields of their own)."""

    def __init__(self, settings_cls: type[BaseSettings], *, explicit: Mapping[str, Any]) -> None:
        super().__init__(settings_cls, case_sensitive=True, env_prefix="")
        # pydantic-settings merges dict values across sources: an explicit
        # asset_overrides={} must not be filled from the environment.
        self._explicit = frozenset(explicit)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = dict(os.environ)
        env = {k: v for k, v in environ.items() if k.startswith("MODELKIT_")}
        values: dict[str, Any] = {}
        if "asset_overrides" not in self._explicit:
            values["asset_overrides"] = read_asset_overrides(environ)
        for variable, field in _MODELKIT_NAMES.items():
            if env.get(variable):
                values[field] = env[variable]
        provider = env.get("MODELKIT_STORAGE_PROVIDER", "").strip().lower()
        if provider:
            bucket = env.get("MODELKIT_STORAGE_BUCKET", "")
            prefix = env.get("MODELKIT_STORAGE_PREFIX", DEFAULT_PREFIX).strip("/")
            if not bucket:
                raise ConfigError(
                    "MODELKIT_STORAGE_PROVIDER is set but MODELKIT_STORAGE_BUCKET is empty"
                )
            if provider == "local":
                values["storage"] = Path(bucket, prefix).absolute().as_uri()
            elif provider in ("s3", "gcs", "az"):
                scheme = {"s3": "s3", "gcs": "gs", "az": "az"}[provider]
                values["storage"] = f"{scheme}://{bucket}/{prefix}".rstrip("/")
            else:
                raise ConfigError(
                    f"MODELKIT_STORAGE_PROVIDER={provider!r} is not supported "
                    "(aiomodelkit supports local, s3, gcs and az)"
                )
        return values


def read_asset_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The per-asset override variables, by upper-cased name.

    ``AIOMODELKIT_<NAME>_FILE`` / ``AIOMODELKIT_<NAME>_VERSION`` and modelkit's
    ``MODELKIT_<NAME>_FILE`` / ``_VERSION`` fallbacks (interpreted in ``_overrides.py``);
    :class:`Settings` fills ``asset_overrides`` with them when it is built.
    Variables that are settings fields (``AIOMODELKIT_LOCK_FILE``) are left out.

    Example:
        >>> read_asset_overrides({"AIOMODELKIT_MODELS_CLF_VERSION": "1.2", "HOME": "/root"})
        {'AIOMODELKIT_MODELS_CLF_VERSION': '1.2'}
    """
    source = os.environ if environ is None else environ
    fields = {f"AIOMODELKIT_{name.upper()}" for name in _FIELD_NAMES}
    found = {}
    for name, value in source.items():
        upper = name.upper()
        if (
            upper.startswith(("AIOMODELKIT_", "MODELKIT_"))
            and upper.endswith(("_FILE", "_VERSION"))
            and upper not in fields
        ):
            found[upper] = value
    return found


_FIELD_NAMES = frozenset(Settings.model_fields)
