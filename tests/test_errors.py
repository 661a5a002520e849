"""The exception tree: builtin bases, context in messages, pickling, and the drawn docstring."""

from __future__ import annotations

import inspect
import pickle
import re
from typing import Any

import pytest

from aiomodelkit import _errors
from aiomodelkit._errors import (
    AssetNotFoundError,
    ConfigError,
    InvalidAssetSpecError,
    InvalidVersionError,
    ModelkitError,
    NotModifiedError,
    StoreError,
    StorePermissionError,
    StoreUnavailableError,
)


def _subclasses(cls: type[ModelkitError]) -> set[type[ModelkitError]]:
    found: set[type[ModelkitError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def _all_classes() -> list[type[ModelkitError]]:
    exported = {getattr(_errors, name) for name in _errors.__all__}
    classes = {ModelkitError} | _subclasses(ModelkitError) | exported
    return sorted(classes, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


_CLASSES = _all_classes()
_CONTEXT: dict[str, Any] = {
    "asset": "models/clf",
    "key": "prefix/models/clf/1.0.meta",
    "store_url": "s3://bucket/prefix",
    "spec": "models/clf:1.x",
    "available_versions": ["1.1", "1.0"],
    "retry_after": 2.5,
}


def _accepted_context(cls: type[ModelkitError]) -> dict[str, Any]:
    parameters = inspect.signature(cls).parameters
    return {name: value for name, value in _CONTEXT.items() if name in parameters}


def _build(cls: type[ModelkitError]) -> ModelkitError:
    return cls("something went wrong", **_accepted_context(cls))


def test_tree_is_found() -> None:
    names = {cls.__name__ for cls in _CLASSES}
    assert set(_errors.__all__) <= names
    assert {"ModelkitError", "ConfigError", "AssetNotFoundError", "StoreError"} <= names


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda cls: cls.__name__)
def test_every_class_is_a_modelkit_error(cls: type[ModelkitError]) -> None:
    assert issubclass(cls, ModelkitError)
    assert issubclass(cls, Exception)
    assert cls.__name__.endswith("Error")


def test_exports_are_modelkit_errors() -> None:
    for name in _errors.__all__:
        cls = getattr(_errors, name)
        assert isinstance(cls, type)
        assert issubclass(cls, ModelkitError), name


def test_every_class_of_the_module_is_exported() -> None:
    defined = {cls.__name__ for cls in _CLASSES if cls.__module__ == _errors.__name__}
    assert defined == set(_errors.__all__)
    assert list(_errors.__all__) == sorted(_errors.__all__)


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda cls: cls.__name__)
def test_context_is_kept_and_shown(cls: type[ModelkitError]) -> None:
    context = _accepted_context(cls)
    assert {"asset", "key", "store_url"} <= set(context)
    error = _build(cls)
    text = str(error)
    assert error.message == "something went wrong"
    assert text.startswith("something went wrong")
    for name in ("asset", "key", "store_url"):
        assert getattr(error, name) == context[name]
        assert context[name] in text
    assert cls.__name__ in repr(error)
    assert "models/clf" in repr(error)


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda cls: cls.__name__)
def test_message_without_context(cls: type[ModelkitError]) -> None:
    error = cls("plain")
    assert str(error) == "plain"
    assert error.asset is None
    assert error.key is None
    assert error.store_url is None


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip(cls: type[ModelkitError], protocol: int) -> None:
    error = _build(cls)
    loaded = pickle.loads(pickle.dumps(error, protocol=protocol))
    assert type(loaded) is cls
    assert loaded.message == error.message
    assert str(loaded) == str(error)
    assert repr(loaded) == repr(error)
    assert loaded.args == error.args
    assert vars(loaded) == vars(error)
    for name in _accepted_context(cls):
        assert getattr(loaded, name) == getattr(error, name)


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda cls: cls.__name__)
def test_pickle_round_trip_without_context(cls: type[ModelkitError]) -> None:
    error = cls("bare")
    loaded = pickle.loads(pickle.dumps(error))
    assert type(loaded) is cls
    assert str(loaded) == "bare"
    assert vars(loaded) == vars(error)


def test_builtin_bases() -> None:
    assert issubclass(AssetNotFoundError, FileNotFoundError)
    assert issubclass(AssetNotFoundError, OSError)
    assert issubclass(StorePermissionError, PermissionError)
    assert issubclass(StorePermissionError, StoreError)
    assert issubclass(InvalidAssetSpecError, ValueError)
    assert issubclass(InvalidAssetSpecError, ConfigError)
    assert issubclass(InvalidVersionError, InvalidAssetSpecError)


def test_builtin_bases_catch() -> None:
    with pytest.raises(FileNotFoundError, match="gone"):
        raise AssetNotFoundError("gone", asset="a")
    with pytest.raises(PermissionError, match="denied"):
        raise StorePermissionError("denied", store_url="s3://bucket")
    with pytest.raises(ValueError, match="bad spec"):
        raise InvalidAssetSpecError("bad spec", spec="a//b")


def test_not_modified_keeps_its_token() -> None:
    error = NotModifiedError.since("1700", key="m.versions", store_url="gs://b/p")
    assert str(error) == "not modified since 1700 (key='m.versions', store_url='gs://b/p')"
    assert error.token == "1700"
    loaded = pickle.loads(pickle.dumps(error))
    assert (type(loaded), str(loaded), vars(loaded)) == (type(error), str(error), vars(error))
    # A store error (mapped and given context like the others), never a transient one.
    assert issubclass(NotModifiedError, StoreError)
    assert not issubclass(NotModifiedError, StoreUnavailableError)
    error.add_context(asset="m")
    assert error.token == "1700"


def test_retry_after_is_kept_but_not_shown() -> None:
    error = StoreUnavailableError("SlowDown (HTTP 503): slow down", key="k", retry_after=2.0)
    assert error.retry_after == 2.0
    assert str(error) == "SlowDown (HTTP 503): slow down (key='k')"
    loaded = pickle.loads(pickle.dumps(error))
    assert (type(loaded), str(loaded), vars(loaded)) == (type(error), str(error), vars(error))
    error.add_context(model="clf", store_url="s3://b")  # named on the way out, wait kept
    assert error.retry_after == 2.0
    assert str(error) == "SlowDown (HTTP 503): slow down (model='clf', key='k', store_url='s3://b')"
    assert StoreUnavailableError("reset").retry_after is None


def test_available_versions_are_listed() -> None:
    error = AssetNotFoundError(
        "no version matches '3'", asset="a", available_versions=["2.0", "1.0"]
    )
    assert error.available_versions == ("2.0", "1.0")
    assert str(error) == "no version matches '3' (asset='a'); available versions: 2.0, 1.0"
    assert AssetNotFoundError("missing").available_versions is None
    assert "available versions" not in str(AssetNotFoundError("missing"))
    empty = AssetNotFoundError("missing", available_versions=[])
    assert empty.available_versions == ()
    assert str(empty).endswith("available versions: none")
    loaded = pickle.loads(pickle.dumps(empty))
    assert loaded.available_versions == ()
    assert str(loaded) == str(empty)


def test_available_versions_accepts_any_iterable_sequence() -> None:
    error = AssetNotFoundError("missing", available_versions=("b", "a"))
    assert error.available_versions == ("b", "a")
    assert hash(error.available_versions) is not None


def test_spec_is_shown() -> None:
    error = InvalidVersionError("bad version", spec="a:1.x", asset="a")
    assert error.spec == "a:1.x"
    assert str(error) == "bad version (spec='a:1.x', asset='a')"
    assert pickle.loads(pickle.dumps(error)).spec == "a:1.x"


def test_context_is_keyword_only() -> None:
    for cls in _CLASSES:
        for name, parameter in inspect.signature(cls).parameters.items():
            if name != "message":
                assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, (cls, name)


def _drawn_tree() -> dict[str, str | None]:
    """Parse the docstring's tree into {class name: parent name}, by the names' columns."""
    assert _errors.__doc__ is not None
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    root_column: int | None = None
    for line in _errors.__doc__.splitlines():
        match = re.match(r"[\s│├└─]*?([A-Z]\w*Error)\b", line)
        if match is None:
            continue
        column = match.start(1)
        root_column = column if root_column is None else root_column
        depth, misaligned = divmod(column - root_column, 4)
        assert not misaligned, line
        del stack[depth:]
        parents[match.group(1)] = stack[-1] if stack else None
        stack.append(match.group(1))
    return parents


def test_docstring_draws_every_class() -> None:
    assert _errors.__doc__ is not None
    for name in _errors.__all__:
        assert name in _errors.__doc__, name


def test_docstring_tree_matches_the_classes() -> None:
    drawn = _drawn_tree()
    assert set(drawn) == set(_errors.__all__)
    for name, parent in drawn.items():
        cls = getattr(_errors, name)
        if parent is None:
            assert cls is ModelkitError
        else:
            assert getattr(_errors, parent) in cls.__bases__, (name, parent)


# -- "not found", worded one way (issue 13) ---------------------------------------------


_STORE = "file:///srv/store"


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            AssetNotFoundError.no_asset("models/x", store_url=_STORE, key="models/x.versions"),
            "no asset named 'models/x' in file:///srv/store",
        ),
        (
            AssetNotFoundError.no_version(
                "models/c", "3.1", store_url=_STORE, available=["1.0", "0.0"], key="k.meta"
            ),
            "no version 3.1 of 'models/c' in file:///srv/store; available versions: 1.0, 0.0",
        ),
        (
            AssetNotFoundError.no_version(
                "models/c", "3", store_url=_STORE, partial=True, available=["0.0"]
            ),
            "no version matching 3 of 'models/c' in file:///srv/store; available versions: 0.0",
        ),
        (
            AssetNotFoundError.no_version("models/c", None, store_url=None, available=[]),
            "no version of 'models/c'; available versions: none",
        ),
        (
            AssetNotFoundError.no_file("models/c", "1.0", "w.bin", store_url=_STORE),
            "no file 'w.bin' in version 1.0 of 'models/c' in file:///srv/store",
        ),
        (
            AssetNotFoundError.no_object("models/c/1.0", store_url=_STORE),
            "no object 'models/c/1.0' in file:///srv/store",
        ),
        (
            AssetNotFoundError.no_object("k", store_url="gs://b/p", detail="HTTP 404: Not Found"),
            "no object 'k' in gs://b/p (HTTP 404: Not Found)",
        ),
    ],
    ids=["asset", "version", "partial-version", "no-version-at-all", "file", "object", "detail"],
)
def test_not_found_reads_one_way(error: AssetNotFoundError, text: str) -> None:
    assert str(error) == text
    assert isinstance(error, FileNotFoundError)
    loaded = pickle.loads(pickle.dumps(error))
    assert (type(loaded), str(loaded), vars(loaded)) == (type(error), text, vars(error))


def test_not_found_keeps_its_context_in_attributes() -> None:
    error = AssetNotFoundError.no_version(
        "models/c", "3.1", store_url=_STORE, available=["0.0"], key="models/c/3.1.meta"
    )
    assert (error.asset, error.store_url, error.key) == ("models/c", _STORE, "models/c/3.1.meta")
    assert error.available_versions == ("0.0",)
    error.add_context(model="clf")  # the library names the model on the way out
    assert str(error).endswith("in file:///srv/store (model='clf'); available versions: 0.0")


def test_context_the_message_states_is_not_repeated() -> None:
    assert str(InvalidAssetSpecError("asset name 'a/../b' is bad", spec="a/../b")) == (
        "asset name 'a/../b' is bad"
    )
    # Named only as part of a longer word or path: still shown.
    assert str(AssetNotFoundError("bad version", asset="a")) == "bad version (asset='a')"
    missing = AssetNotFoundError.no_object("models/x.versions", store_url=_STORE)
    missing.add_context(asset="models/x")
    assert str(missing) == "no object 'models/x.versions' in file:///srv/store (asset='models/x')"
