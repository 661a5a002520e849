"""The table of bad inputs (issue 13): every command, every way to get its input wrong.

Each :class:`Case` is one command line (``{placeholders}`` are paths of the test's world,
see ``_world.py``), the exit status it must end with, and a piece of the one ``error:``
line it must print on stderr. Every row is also checked for what it must *not* do: print a
traceback or more than one line, write to stdout, or change the store, the cache or the
output directory (see ``test_bad_inputs.py``). Status 1 is a user error; status 2 a usage
error (click's status: an unknown option, a missing argument, a value of the wrong type).

The world (``_world.py``): a local store holding ``models/c`` 0.0 (a file) and ``models/d``
0.0 (a directory holding ``x.bin``), a cache holding ``models/c`` 0.0, retries without
waits (``AIOMODELKIT_RETRY_BACKOFF=0``), and no cloud credentials at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CASES", "SUBPROCESS_CASES", "Case"]

#: An S3 endpoint where nothing listens, with credentials.
S3_CLOSED = {
    "AWS_ENDPOINT_URL": "{closed}",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
NO_STORE = {"AIOMODELKIT_STORAGE": None}


@dataclass(frozen=True)
class Case:
    """One bad command line and what it must print.

    Attributes:
        id: the test id.
        argv: the arguments after ``aiomodelkit``.
        says: a piece of the error line (after ``error:``).
        status: the exit status.
        env: variables to set (None: unset) for this row only.
        notes: lines allowed on stderr before the error line (``serve`` says where it
            listens; a publication shows its plan).
        needs: hazards of the world the row uses (skipped where the machine has none).
        hides: text that must not appear anywhere (a secret in the input).
        xfail: why the row fails today, in a file another change owns (strict: it must
            fail, so that the fix flips it).
    """

    id: str
    argv: tuple[str, ...]
    says: str
    status: int = 1
    env: Mapping[str, str | None] = field(default_factory=dict)
    notes: int = 0
    needs: tuple[str, ...] = ()
    hides: str | None = None
    xfail: str | None = None


def _case(
    id: str,
    argv: str | tuple[str, ...],
    says: str,
    status: int = 1,
    *,
    env: Mapping[str, str | None] | None = None,
    notes: int = 0,
    needs: tuple[str, ...] = (),
    hides: str | None = None,
    xfail: str | None = None,
) -> Case:
    words = tuple(argv.split()) if isinstance(argv, str) else argv
    return Case(id, words, says, status, dict(env or {}), notes, needs, hides, xfail)


#: botocore's credential chain reads ~/.aws/credentials on the event loop.
BLOCKS = "botocore reads the AWS credential files on the event loop (blockbuster)"


CASES: list[Case] = [
    # -- bad specs and names -------------------------------------------------------------
    _case("spec-dotdot", "assets fetch models/../x", "asset name 'models/../x' has a '..' segment"),
    _case("spec-absolute", "assets fetch /models/c", "must be relative (no leading '/')"),
    _case("spec-empty", ("assets", "fetch", ""), "asset name is empty"),
    _case("spec-unclosed-bracket", "assets fetch models/d:0[x.bin", "expected name[:version]"),
    _case("spec-subpart-escapes", "assets fetch models/d:0[../x]", "sub-part '../x' has a '..'"),
    _case("spec-backslash", ("assets", "fetch", "models\\c"), "backslash"),
    _case("spec-space", ("assets", "fetch", "models/c d"), "whitespace"),
    _case("spec-control-char", ("assets", "fetch", "models/c\x07"), "control character"),
    _case("spec-two-colons", "assets fetch models/c:0:1", "at most one ':'"),
    _case("name-with-version", "assets versions models/c:0", "segment 'c:0' must use only"),
    _case("new-name-dotdot", "assets new {src} models/../e --yes", "has a '..' segment"),
    # -- bad versions (fetch's own rows live in test_front_door.py) ------------------------
    _case("lock-version-leading-zero", "assets lock models/c:01 -o {out}/x.lock", "'01' is not"),
    _case(
        "versioning-mismatch",
        "assets fetch models/c:0.0",
        "version '0.0' is not valid for simple_date versioning",
        env={"AIOMODELKIT_VERSIONING": "simple_date"},
    ),
    _case(
        "update-major-not-a-version", "assets update {src} models/c --major x --yes", "'x' is not"
    ),
    _case(
        "update-major-complete",
        "assets update {src} models/c --major 1.2 --yes",
        "major '1.2' must be a bare integer",
    ),
    _case(
        "download-bad-configured-version",
        "download-assets {badversion_models}",
        "version '1.2.3' is not valid for major_minor versioning",
    ),
    # -- not found: one wording, "no <thing> in <store>" -----------------------------------
    _case(
        "fetch-no-asset", "assets fetch models/nosuch:1", "no asset named 'models/nosuch' in file:"
    ),
    _case("versions-no-asset", "assets versions models/nosuch", "no asset named 'models/nosuch'"),
    _case(
        "fetch-no-version",
        "assets fetch models/c:3.1",
        "no version 3.1 of 'models/c' in {store_url}; available versions: 0.0",
    ),
    _case(
        "fetch-no-major",
        "assets fetch models/c:3",
        "no version matching 3 of 'models/c' in {store_url}; available versions: 0.0",
    ),
    _case(
        "fetch-no-file",
        "assets fetch models/d:0[nosuch.bin]",
        "no file 'nosuch.bin' in version 0.0 of 'models/d' in {store_url}",
    ),
    _case("lock-no-asset", "assets lock models/nosuch -o {out}/x.lock", "no asset named"),
    _case("lock-no-version", "assets lock models/c:3.1 -o {out}/x.lock", "no version 3.1 of"),
    _case("update-no-asset", "assets update {src} models/nosuch --yes", "no asset named"),
    _case(
        "update-no-major",
        "assets update {src} models/c --major 5 --yes",
        "no version matching 5 of 'models/c'",
    ),
    _case("new-asset-exists", "assets new {src} models/c --yes", "asset already exists"),
    _case(
        "download-missing-asset",
        "download-assets {missing_models}",
        "no asset named 'models/nosuch'",
    ),
    _case(
        "serve-missing-asset",
        "serve {missing_models} --port 0",
        "no asset named 'models/nosuch'",
        notes=1,  # "listening on http://127.0.0.1:PORT"
    ),
    # -- paths: missing, unreadable, read-only, a file instead of a directory --------------
    _case("new-missing-source", "assets new {tmp}/nosuch models/e --yes", "nothing to publish"),
    _case("new-empty-directory", "assets new {empty_dir} models/e --yes", "holds no file"),
    _case(
        "new-unreadable-source",
        "assets new {unreadable_file} models/e --yes",
        "is not readable",
        2,
        needs=("unreadable_file",),
    ),
    _case(
        "new-unreadable-file-inside",
        "assets new {unreadable_tree} models/e --yes",
        "Permission denied",
        needs=("unreadable_tree",),
    ),
    _case(
        "fetch-lock-file-env-missing",
        "assets fetch models/c:0",
        "nosuch.lock' does not exist",
        env={"AIOMODELKIT_LOCK_FILE": "{tmp}/nosuch.lock"},
    ),
    _case(
        "download-lock-file-env-missing",
        "download-assets {models}",
        "nosuch.lock' does not exist",
        env={"AIOMODELKIT_LOCK_FILE": "{tmp}/nosuch.lock"},
    ),
    _case(
        "fetch-lock-file-is-a-directory",
        "assets fetch models/c:0 --lock-file {out}",
        "cannot be read: Is a directory",
    ),
    _case("fetch-lock-file-malformed", "assets fetch models/c:0 --lock-file {src}", "malformed"),
    _case(
        "fetch-lock-file-unreadable",
        "assets fetch models/c:0 --lock-file {unreadable_file}",
        "is not readable",
        2,
        needs=("unreadable_file",),
    ),
    _case(
        "lock-output-in-missing-directory",
        "assets lock models/c -o {out}/nodir/x.lock",
        "cannot write the lock file",
    ),
    _case("lock-output-is-a-directory", "assets lock models/c -o {out}", "Is a directory"),
    _case(
        "lock-output-read-only",
        "assets lock models/c -o {read_only_dir}/x.lock",
        "cannot write the lock file",
        needs=("read_only_dir",),
    ),
    _case(
        "download-assets-dir-is-a-file",
        "download-assets {models} --assets-dir {src}",
        "is a file, not a directory",
    ),
    _case(
        "fetch-assets-dir-under-a-file",
        "assets fetch models/c --assets-dir {src}/cache",
        "cannot create the assets directory",
    ),
    _case(
        "fetch-assets-dir-cannot-be-created",
        "assets fetch models/c --assets-dir {read_only_dir}/cache",
        "cannot create the assets directory",
        needs=("read_only_dir",),
    ),
    _case(
        "fetch-read-only-cache",
        "assets fetch models/d:0 --assets-dir {read_only_dir}",
        "cannot write to the assets cache",
        needs=("read_only_dir",),
    ),
    _case(
        "fetch-store-missing",
        "assets fetch models/d --storage {tmp}/nosuch",
        "the local store's root directory does not exist",
    ),
    _case(
        "list-store-is-a-file",
        "assets list --storage {src}",
        "the local store's root is not a directory",
    ),
    _case(
        "new-store-read-only",
        "assets new {src} models/e --yes --storage {read_only_dir}",
        "permission denied",
        notes=1,  # the plan: "Publish ... as models/e:0.0 ... to file://..."
        needs=("read_only_dir",),
    ),
    # -- the cache commands (issue 16) ------------------------------------------------------
    _case("cache-ls-no-dir", "cache ls --assets-dir {tmp}/nosuch", "no assets cache at '"),
    _case("cache-ls-dir-is-a-file", "cache ls --assets-dir {src}", "is a file, not a directory"),
    _case("cache-verify-bad-spec", "cache verify models/../x", "has a '..' segment"),
    _case(
        "cache-verify-not-cached", "cache verify models/d", "no version of 'models/d' in the cache"
    ),
    _case(
        "cache-verify-no-version",
        "cache verify models/c:3.1",
        "no version 3.1 of 'models/c' in the cache '{cache}'",
    ),
    _case("cache-verify-repair-no-store", "cache verify --repair", "no store", env=NO_STORE),
    _case(
        "cache-prune-lock-file-missing",
        "cache prune --keep-latest 1 --keep-lock-file {tmp}/nosuch.lock",
        "nosuch.lock' does not exist",
    ),
    _case("cache-prune-lock-file-malformed", "cache prune --keep-lock-file {src}", "malformed"),
    _case(
        "cache-prune-read-only",
        "cache prune --max-size 0 --assets-dir {read_only_dir}",
        "read-only",
        needs=("read_only_dir",),
    ),
    _case("cache-prune-bad-age", "cache prune --older-than 3x", "'3x' is not a duration", 2),
    _case("cache-prune-bad-size", "cache prune --max-size 12XB", "'12XB' is not a size", 2),
    _case("cache-prune-keep-none", "cache prune --keep-latest 0", "'--keep-latest'", 2),
    _case("usage-cache-unknown-sort", "cache ls --sort age", "Invalid value for '--sort'", 2),
    _case("describe-no-module", "describe {tmp}/nosuch.py", "no such file"),
    _case("describe-directory", "describe {tmp}", "a directory, not a .py file"),
    _case("list-assets-not-python", "list-assets {src}", "not a .py file"),
    _case(
        "describe-unreadable-module",
        "describe {unreadable_file}",
        "Permission denied",
        needs=("unreadable_file",),
    ),
    _case("describe-bad-spec", "describe {badspec_models}", "has a '..' segment"),
    _case("list-assets-bad-spec", "list-assets {badspec_models}", "has a '..' segment"),
    _case("download-no-module", "download-assets no_such_models_module", "no such module"),
    _case("serve-no-module", "serve {tmp}/nosuch.py", "no such file"),
    _case("list-assets-unknown-model", "list-assets {models} -r nope", "unknown model 'nope'"),
    _case("serve-unknown-model", "serve {models} -r nope --port 0", "unknown model 'nope'"),
    _case("serve-port-out-of-range", "serve {models} --port 70000", "a port is 0 to 65535"),
    # -- unknown schemes and malformed store URLs --------------------------------------------
    _case("scheme-unknown", "assets list --storage foo://bar", "unknown storage scheme 'foo'"),
    _case("scheme-s3-no-bucket", "assets fetch models/c --storage s3://", "has no bucket"),
    _case("scheme-gs-no-bucket", "assets versions models/c --storage gs://", "has no bucket"),
    _case(
        "scheme-file-host", "assets new {src} e --yes --storage file://host/x", "not name a host"
    ),
    _case("scheme-query", "assets list --storage s3://bucket?x=1", "take no query"),
    _case(
        "scheme-embedded-credentials",
        "assets list --storage s3://AKIDEXAMPLE:hunter2@bucket",
        "credentials must not be embedded",
        hides="hunter2",
    ),
    _case(
        "modelkit-provider-unknown",
        "assets list",
        "MODELKIT_STORAGE_PROVIDER='azure' is not supported",
        env={**NO_STORE, "MODELKIT_STORAGE_PROVIDER": "azure", "MODELKIT_STORAGE_BUCKET": "b"},
    ),
    _case(
        "modelkit-provider-no-bucket",
        "assets list",
        "MODELKIT_STORAGE_BUCKET is empty",
        env={**NO_STORE, "MODELKIT_STORAGE_PROVIDER": "local"},
    ),
    _case("no-store-lock", "assets lock models/c", "no store configured", env=NO_STORE),
    # -- settings ---------------------------------------------------------------------------
    _case(
        "setting-versioning",
        "assets list",
        "versioning (AIOMODELKIT_VERSIONING)",
        env={"AIOMODELKIT_VERSIONING": "weird"},
    ),
    _case(
        "setting-connections",
        "assets fetch models/c",
        "max_connections (AIOMODELKIT_MAX_CONNECTIONS)",
        env={"AIOMODELKIT_MAX_CONNECTIONS": "0"},
    ),
    _case(
        "setting-offline-not-a-boolean",
        "assets fetch models/c",
        "offline (AIOMODELKIT_OFFLINE)",
        env={"AIOMODELKIT_OFFLINE": "maybe"},
    ),
    # -- contradictory flags (--bump-major with --major: test_front_door.py) ----------------
    _case("fetch-force-offline", "assets fetch models/c --force --offline", "contradict"),
    _case(
        "fetch-forced-by-env-offline",
        "assets fetch models/c --offline",
        "contradict",
        env={"AIOMODELKIT_FORCE_DOWNLOAD": "true"},
    ),
    # -- usage errors: click's status 2, one line too --------------------------------------
    _case("usage-missing-argument", "assets fetch", "Missing argument", 2),
    _case("usage-unknown-option", "assets fetch models/c --bogus", "No such option: --bogus", 2),
    _case("usage-unknown-command", "assets nope", "No such command 'nope'", 2),
    _case("usage-option-needs-value", "assets lock models/c -o", "requires an argument", 2),
    _case("usage-port-not-a-number", "serve {models} --port x", "Invalid value for '--port'", 2),
    _case("usage-size-not-positive", "demo --size-mib 0", "Invalid value for '--size-mib'", 2),
    _case("usage-new-one-argument", "assets new {src}", "Missing argument", 2),
    # -- missing credentials ---------------------------------------------------------------
    _case(
        "s3-no-credentials",
        "assets versions models/c --storage s3://bucket",
        "no usable AWS credentials",
        env={"AWS_ENDPOINT_URL": "{closed}", "AWS_DEFAULT_REGION": "us-east-1"},
        xfail=BLOCKS,  # in-process only: the same row passes as a real process
    ),
    _case(
        "gs-no-credentials",
        "assets versions models/c --storage gs://bucket",
        "no Google credentials found",
    ),
    _case(
        "gs-credentials-file-missing",
        "assets fetch models/d --storage gs://bucket",
        "credentials file '{tmp}/nope.json' does not exist",
        env={"GOOGLE_APPLICATION_CREDENTIALS": "{tmp}/nope.json"},
    ),
    # -- unreachable endpoints (a closed loopback port) ------------------------------------
    _case(
        "s3-unreachable-fetch",
        "assets fetch models/d --storage s3://bucket",
        "Cannot connect to host 127.0.0.1",
        env=S3_CLOSED,
    ),
    _case(
        "s3-unreachable-list",
        "assets list --storage s3://bucket",
        "Could not connect to the endpoint URL",
        env=S3_CLOSED,
    ),
    _case(
        "s3-unreachable-new",
        "assets new {src} models/e --yes --storage s3://bucket",
        "Could not connect",
        env=S3_CLOSED,
    ),
    _case(
        "s3-unreachable-download",
        "download-assets {models} --storage s3://bucket --force",
        "Cannot connect to host 127.0.0.1",
        env=S3_CLOSED,
    ),
    _case(
        "s3-endpoint-not-a-url",
        "assets fetch models/d --storage s3://bucket",
        "invalid S3 endpoint URL",
        env={**S3_CLOSED, "AWS_ENDPOINT_URL": "not-a-url"},
    ),
    _case(
        "gs-emulator-unreachable",
        "assets versions models/c --storage gs://bucket",
        "Cannot connect to host 127.0.0.1",
        env={"STORAGE_EMULATOR_HOST": "{closed}"},
    ),
]

#: Rows run again as a real process (``python -m aiomodelkit``): the real exit status,
#: the real stderr, no traceback.
SUBPROCESS_CASES = [
    replace(case, xfail=None if case.xfail == BLOCKS else case.xfail)
    for case in CASES
    if case.id
    in {
        "spec-dotdot",
        "fetch-no-asset",
        "s3-no-credentials",
        "usage-unknown-option",
        "lock-output-in-missing-directory",
        "scheme-unknown",
        "s3-unreachable-fetch",
        "cache-verify-no-version",
    }
]
