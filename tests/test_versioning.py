"""Versioning systems: validation, ordering, resolution and the next version to publish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiomodelkit import _versioning
from aiomodelkit._errors import AssetNotFoundError, ConfigError, InvalidVersionError
from aiomodelkit._versioning import (
    MAJOR_MINOR,
    SIMPLE_DATE,
    MajorMinorVersioning,
    SimpleDateVersioning,
    VersioningSystem,
    get_versioning,
)

_DATE_FORMAT = "%Y-%m-%dT%H-%M-%SZ"
_NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Freeze the clock simple_date reads; returns the frozen instant."""

    class _FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> _FrozenDatetime:
            assert tz is UTC
            return cls.fromtimestamp(_NOW.timestamp(), tz)

    monkeypatch.setattr(_versioning, "datetime", _FrozenDatetime)
    return _NOW


def _date(moment: datetime) -> str:
    return moment.strftime(_DATE_FORMAT)


# --- major_minor -----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0", "1", "1.2", "10.11", "0.0", "123.0"])
def test_major_minor_accepts(version: str) -> None:
    assert MAJOR_MINOR.validate(version) == version


@pytest.mark.parametrize("version", ["01", "1.02", "00", "1.", ".1", "a", "", "1.2.3", "1.x", "-1"])
def test_major_minor_rejects(version: str) -> None:
    with pytest.raises(InvalidVersionError) as info:
        MAJOR_MINOR.validate(version, spec=f"a:{version}", asset="a")
    assert repr(version) in info.value.message or "empty" in info.value.message
    assert info.value.spec == f"a:{version}"


def test_major_minor_reject_names_the_rule() -> None:
    with pytest.raises(InvalidVersionError, match="without leading zeros") as info:
        MAJOR_MINOR.validate("1.02", asset="models/clf")
    assert info.value.asset == "models/clf"
    assert "major_minor" in info.value.message


def test_major_minor_orders_numerically() -> None:
    key = MAJOR_MINOR.sort_key
    assert key("1.10") > key("1.9")
    assert key("10.0") > key("9.9")
    assert key("2.0") > key("1.99")
    # As implemented: a bare major sorts just below its first minor.
    assert key("2.0") > key("2") > key("1.99")
    assert MAJOR_MINOR.sort(["1.9", "10.0", "1.10", "2", "2.0", "9.9", "1.10"]) == [
        "10.0",
        "9.9",
        "2.0",
        "2",
        "1.10",
        "1.9",
    ]


def test_sort_rejects_invalid() -> None:
    with pytest.raises(InvalidVersionError, match=r"'1\.x'"):
        MAJOR_MINOR.sort(["1.0", "1.x"])


def test_is_complete() -> None:
    assert MAJOR_MINOR.is_complete("1.0")
    assert not MAJOR_MINOR.is_complete("1")
    assert SIMPLE_DATE.is_complete("2024-01-02T03-04-05Z")


_MANY = ["0.1", "1.3", "1.12", "1.9", "10.0", "10.20", "100.5", "11.1", "2.0"]


def test_resolve_partial_major_never_matches_a_longer_major() -> None:
    # modelkit's "1" regex also matched 10.x and 100.x.
    assert MAJOR_MINOR.resolve(_MANY, "1") == "1.12"
    assert MAJOR_MINOR.resolve(["10.0", "100.5", "1.0"], "1") == "1.0"
    assert MAJOR_MINOR.resolve(_MANY, "10") == "10.20"
    assert MAJOR_MINOR.resolve(_MANY, "0") == "0.1"


def test_resolve_complete_version() -> None:
    assert MAJOR_MINOR.resolve(_MANY, "1.9") == "1.9"
    with pytest.raises(AssetNotFoundError, match=r"^no version 1\.4;"):
        MAJOR_MINOR.resolve(_MANY, "1.4")


def test_resolve_missing_major_lists_versions_newest_first() -> None:
    with pytest.raises(AssetNotFoundError) as info:
        MAJOR_MINOR.resolve(["1.0", "2.1", "10.0", "2.0"], "3", asset="models/clf")
    error = info.value
    assert isinstance(error, FileNotFoundError)
    assert error.available_versions == ("10.0", "2.1", "2.0", "1.0")
    assert str(error).startswith("no version matching 3 of 'models/clf';")
    assert "available versions: 10.0, 2.1, 2.0, 1.0" in str(error)
    assert error.asset == "models/clf"
    assert "models/clf" in str(error)


def test_resolve_newest() -> None:
    assert MAJOR_MINOR.resolve(_MANY, None) == "100.5"
    assert MAJOR_MINOR.resolve(iter(["1.0", "1.1"]), None) == "1.1"


@pytest.mark.parametrize("requested", [None, "1", "1.0"])
def test_resolve_empty(requested: str | None) -> None:
    with pytest.raises(AssetNotFoundError) as info:
        MAJOR_MINOR.resolve([], requested, asset="a")
    assert info.value.available_versions == ()
    assert "available versions: none" in str(info.value)


def test_resolve_rejects_invalid_request() -> None:
    with pytest.raises(InvalidVersionError):
        MAJOR_MINOR.resolve(_MANY, "1.x")


def test_next_version_major_minor() -> None:
    assert MAJOR_MINOR.next_version([]) == "0.0"
    assert MAJOR_MINOR.initial_version() == "0.0"
    assert MAJOR_MINOR.next_version(["0.0"]) == "0.1"
    assert MAJOR_MINOR.next_version(["1.9", "1.10", "0.3"]) == "1.11"
    assert MAJOR_MINOR.next_version(["2"]) == "2.1"
    assert MAJOR_MINOR.next_version(["1.9", "1.10", "0.3"], bump_major=True) == "2.0"
    assert MAJOR_MINOR.next_version([], bump_major=True) == "0.0"
    assert MAJOR_MINOR.next_version(["9.3", "10.0"], bump_major=True) == "11.0"


def test_next_version_in_major_ignores_longer_majors() -> None:
    assert MAJOR_MINOR.next_version(_MANY, major="1") == "1.13"
    assert MAJOR_MINOR.next_version(["1.0", "10.4", "100.9"], major="1") == "1.1"
    assert MAJOR_MINOR.next_version(_MANY, major="10") == "10.21"


def test_next_version_missing_major() -> None:
    with pytest.raises(AssetNotFoundError) as info:
        MAJOR_MINOR.next_version(["1.0", "10.0"], major="3")
    assert info.value.available_versions == ("10.0", "1.0")


@pytest.mark.parametrize("major", ["1.2", "1.0"])
def test_next_version_major_must_be_bare(major: str) -> None:
    with pytest.raises(InvalidVersionError, match="bare integer"):
        MAJOR_MINOR.next_version(["1.2"], major=major)


def test_next_version_major_is_validated() -> None:
    with pytest.raises(InvalidVersionError):
        MAJOR_MINOR.next_version(["1.2"], major="01")


# --- simple_date -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "version", ["2024-01-02T03-04-05Z", "2024-02-29T23-59-59Z", "1970-01-01T00-00-00Z"]
)
def test_simple_date_accepts(version: str) -> None:
    assert SIMPLE_DATE.validate(version) == version


@pytest.mark.parametrize(
    "version",
    [
        "2024-13-45T00-00-00Z",
        "2023-02-29T00-00-00Z",
        "2024-01-01T24-00-00Z",
        "2024-01-01T00-60-00Z",
        "2024-01-01T00-00-60Z",
        "2024-01-02T03:04:05Z",
        "2024-01-02T03-04-05",
        "2024-1-02T03-04-05Z",
        "2024-01-02",
        "1.0",
        "",
    ],
)
def test_simple_date_rejects(version: str) -> None:
    with pytest.raises(InvalidVersionError):
        SIMPLE_DATE.validate(version)


def test_simple_date_names_the_rule() -> None:
    with pytest.raises(InvalidVersionError, match="simple_date") as info:
        SIMPLE_DATE.validate("2024-13-45T00-00-00Z", asset="a")
    assert "'2024-13-45T00-00-00Z'" in info.value.message
    assert info.value.asset == "a"


def test_simple_date_ordering_and_resolution() -> None:
    versions = ["2024-01-02T03-04-05Z", "2023-12-31T23-59-59Z", "2024-01-02T03-04-06Z"]
    assert SIMPLE_DATE.sort(versions) == [
        "2024-01-02T03-04-06Z",
        "2024-01-02T03-04-05Z",
        "2023-12-31T23-59-59Z",
    ]
    assert SIMPLE_DATE.resolve(versions, None) == "2024-01-02T03-04-06Z"
    assert SIMPLE_DATE.resolve(versions, "2024-01-02T03-04-05Z") == "2024-01-02T03-04-05Z"
    with pytest.raises(AssetNotFoundError) as info:
        SIMPLE_DATE.resolve(versions, "2020-01-01T00-00-00Z")
    assert info.value.available_versions == tuple(SIMPLE_DATE.sort(versions))


def test_simple_date_next_version_is_now(frozen_now: datetime) -> None:
    expected = _date(frozen_now)
    assert SIMPLE_DATE.next_version([]) == expected
    assert SIMPLE_DATE.initial_version() == expected
    assert SIMPLE_DATE.next_version(["2020-01-01T00-00-00Z"]) == expected


def test_simple_date_next_version_same_second(frozen_now: datetime) -> None:
    same = _date(frozen_now)
    assert SIMPLE_DATE.next_version([same]) == _date(frozen_now + timedelta(seconds=1))


def test_simple_date_next_version_after_a_future_version(frozen_now: datetime) -> None:
    ahead = frozen_now + timedelta(hours=1)
    versions = [_date(frozen_now), _date(ahead), "2020-01-01T00-00-00Z"]
    assert SIMPLE_DATE.next_version(versions) == _date(ahead + timedelta(seconds=1))


def test_simple_date_next_version_real_clock() -> None:
    ahead = _date(datetime.now(UTC) + timedelta(hours=1))
    result = SIMPLE_DATE.next_version([ahead])
    expected = datetime.strptime(ahead, _DATE_FORMAT) + timedelta(seconds=1)
    assert result == expected.strftime(_DATE_FORMAT)
    assert SIMPLE_DATE.validate(SIMPLE_DATE.next_version([])) is not None


def test_simple_date_next_version_at_the_end_of_time() -> None:
    with pytest.raises(InvalidVersionError, match="can follow"):
        SIMPLE_DATE.next_version(["9999-12-31T23-59-59Z"])


@pytest.mark.parametrize(("bump_major", "major"), [(True, None), (False, "1"), (True, "1")])
def test_simple_date_has_no_majors(bump_major: bool, major: str | None) -> None:
    with pytest.raises(ConfigError, match="no major versions"):
        SIMPLE_DATE.next_version(["2024-01-02T03-04-05Z"], bump_major=bump_major, major=major)


# --- registry --------------------------------------------------------------------------


def test_get_versioning() -> None:
    assert get_versioning("major_minor") is MAJOR_MINOR
    assert get_versioning("simple_date") is SIMPLE_DATE
    assert isinstance(MAJOR_MINOR, MajorMinorVersioning)
    assert isinstance(SIMPLE_DATE, SimpleDateVersioning)
    custom = MajorMinorVersioning()
    assert get_versioning(custom) is custom
    assert get_versioning(SIMPLE_DATE) is SIMPLE_DATE


@pytest.mark.parametrize("name", ["semver", "", "MAJOR_MINOR"])
def test_get_versioning_unknown(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_versioning(name)
    message = str(info.value)
    assert repr(name) in message
    assert "major_minor" in message
    assert "simple_date" in message


# --- properties ------------------------------------------------------------------------

_pairs = st.lists(st.tuples(st.integers(0, 120), st.integers(0, 120)), max_size=30)


def _strings(pairs: list[tuple[int, int]]) -> list[str]:
    return [f"{major}.{minor}" for major, minor in pairs]


@given(_pairs)
def test_major_minor_sort_matches_integer_sort(pairs: list[tuple[int, int]]) -> None:
    expected = [f"{major}.{minor}" for major, minor in sorted(set(pairs), reverse=True)]
    assert MAJOR_MINOR.sort(_strings(pairs)) == expected


@given(_pairs, st.integers(0, 120))
def test_major_minor_resolve_major(pairs: list[tuple[int, int]], major: int) -> None:
    minors = [minor for m, minor in pairs if m == major]
    if minors:
        assert MAJOR_MINOR.resolve(_strings(pairs), str(major)) == f"{major}.{max(minors)}"
        assert MAJOR_MINOR.next_version(_strings(pairs), major=str(major)) == (
            f"{major}.{max(minors) + 1}"
        )
    else:
        with pytest.raises(AssetNotFoundError):
            MAJOR_MINOR.resolve(_strings(pairs), str(major))


@given(_pairs, st.booleans())
def test_major_minor_next_version_is_newest(pairs: list[tuple[int, int]], bump: bool) -> None:
    versions = _strings(pairs)
    result = MAJOR_MINOR.next_version(versions, bump_major=bump)
    assert MAJOR_MINOR.validate(result) == result
    assert MAJOR_MINOR.is_complete(result)
    assert all(MAJOR_MINOR.sort_key(result) > MAJOR_MINOR.sort_key(v) for v in versions)
    if bump and pairs:
        assert result == f"{max(pairs)[0] + 1}.0"


_moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
)


@given(st.lists(_moments, max_size=20))
def test_simple_date_sort_is_chronological(moments: list[datetime]) -> None:
    versions = [_date(m) for m in moments]
    expected = [_date(m) for m in sorted({m.replace(microsecond=0) for m in moments}, reverse=True)]
    assert SIMPLE_DATE.sort(versions) == expected
    if versions:
        assert SIMPLE_DATE.resolve(versions, None) == expected[0]


@given(st.lists(_moments, max_size=20))
def test_simple_date_next_version_is_newest(moments: list[datetime]) -> None:
    versions = [_date(m) for m in moments]
    result = SIMPLE_DATE.next_version(versions)
    assert SIMPLE_DATE.validate(result) == result
    assert all(SIMPLE_DATE.sort_key(result) > SIMPLE_DATE.sort_key(v) for v in versions)
    assert result not in versions


def test_systems_are_versioning_systems() -> None:
    systems: list[VersioningSystem] = [MAJOR_MINOR, SIMPLE_DATE]
    assert [s.name for s in systems] == ["major_minor", "simple_date"]
