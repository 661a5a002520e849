"""AssetSpec: the grammar, the value semantics, and the rejections modelkit lacked."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiomodelkit._errors import InvalidAssetSpecError, InvalidVersionError
from aiomodelkit._spec import AssetSpec
from aiomodelkit._versioning import MAJOR_MINOR, SIMPLE_DATE


@pytest.mark.parametrize(
    ("text", "name", "version", "sub_part"),
    [
        ("category/name", "category/name", None, None),
        ("category/name:1", "category/name", "1", None),
        ("category/name:1.2", "category/name", "1.2", None),
        ("category/name:1.2[sub/file.txt]", "category/name", "1.2", "sub/file.txt"),
        ("name[sub]", "name", None, "sub"),
        ("a:1.0[données/é.txt]", "a", "1.0", "données/é.txt"),
        ("a", "a", None, None),
        ("a.b-c_d/e.f", "a.b-c_d/e.f", None, None),
        ("models/clf:2024-01-02T03-04-05Z", "models/clf", "2024-01-02T03-04-05Z", None),
    ],
)
def test_parse(text: str, name: str, version: str | None, sub_part: str | None) -> None:
    spec = AssetSpec.parse(text)
    assert (spec.name, spec.version, spec.sub_part) == (name, version, sub_part)
    assert spec == AssetSpec(name, version, sub_part)
    assert str(spec) == text
    assert AssetSpec.parse(str(spec)) == spec


def test_frozen() -> None:
    spec = AssetSpec.parse("a/b:1.0[c]")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.version = "2.0"  # type: ignore[misc]
    assert spec == AssetSpec("a/b", "1.0", "c")


def test_hashable() -> None:
    first = AssetSpec.parse("a/b:1.0[c/d]")
    second = AssetSpec("a/b", "1.0", "c/d")
    assert first is not second
    assert first == second
    assert hash(first) == hash(second)
    specs = {first, second, AssetSpec.parse("a/b:1.0"), AssetSpec.parse("a/b")}
    assert len(specs) == 3
    assert AssetSpec.parse("a/b") in specs
    assert {first: "x"}[second] == "x"


def test_not_equal_when_any_field_differs() -> None:
    base = AssetSpec.parse("a:1.0[x]")
    assert base != AssetSpec.parse("b:1.0[x]")
    assert base != AssetSpec.parse("a:1.1[x]")
    assert base != AssetSpec.parse("a:1.0[y]")
    assert base != AssetSpec.parse("a:1.0")


def test_repr_shows_the_spec() -> None:
    spec = AssetSpec.parse("models/clf:1.2[weights/model.bin]")
    assert repr(spec) == "AssetSpec('models/clf:1.2[weights/model.bin]')"


def test_with_version_keeps_sub_part() -> None:
    spec = AssetSpec.parse("models/clf:1[weights/model.bin]")
    pinned = spec.with_version("1.3")
    assert pinned == AssetSpec("models/clf", "1.3", "weights/model.bin")
    assert str(pinned) == "models/clf:1.3[weights/model.bin]"
    assert spec.with_version(None) == AssetSpec("models/clf", None, "weights/model.bin")
    assert spec.version == "1"  # the original is untouched


def test_with_version_validates() -> None:
    with pytest.raises(InvalidAssetSpecError, match="version"):
        AssetSpec.parse("a[x]").with_version("../1")


def test_constructor_validates_like_parse() -> None:
    with pytest.raises(InvalidAssetSpecError, match=r"'\.\.' segment"):
        AssetSpec("a/../b")
    with pytest.raises(InvalidAssetSpecError, match="sub-part"):
        AssetSpec("a", None, "../x")


def test_constructor_rejects_brackets_in_sub_part() -> None:
    # Otherwise str(spec) would not parse back.
    with pytest.raises(InvalidAssetSpecError, match="bracket") as info:
        AssetSpec("a", "1.0", "x]y")
    assert info.value.spec == "a:1.0[x]y]"
    with pytest.raises(InvalidAssetSpecError, match="bracket"):
        AssetSpec("a", None, "x[0]")


_LONG_SEGMENT = "a" * 256
_LONG_NAME = "/".join(["a" * 200, "b" * 200, "c" * 200])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "asset name is empty"),
        ("a//b", "empty path segment"),
        ("a/", "empty path segment"),
        ("a/../b", "'..' segment"),
        ("a/./b", "'.' segment"),
        ("..", "'..' segment"),
        ("a:1.0[../x]", "sub-part '../x' has a '..' segment"),
        ("a:1.0[x/./y]", "sub-part 'x/./y' has a '.' segment"),
        ("a:1.0[x/..]", "sub-part 'x/..' has a '..' segment"),
        ("a[x//y]", "sub-part 'x//y' has an empty path segment"),
        ("a[x/]", "sub-part 'x/' has an empty path segment"),
        ("/a/b", "asset name '/a/b' must be relative"),
        ("a:1.0[/etc/passwd]", "sub-part '/etc/passwd' must be relative"),
        ("a\\b", "backslash"),
        ("a:1.0[x\\..\\y]", "sub-part 'x\\\\..\\\\y' contains a backslash"),
        ("a b", "asset name 'a b' contains whitespace"),
        ("a\tb", "asset name 'a\\tb' contains whitespace"),
        ("a\n", "asset name 'a\\n' contains whitespace"),
        ("a:1.0[x y]", "sub-part 'x y' contains whitespace"),
        ("a:1.0[x\n]", "sub-part"),
        ("a:1.0[x\u00a0y]", "sub-part"),
        ("a:1 .0", "version '1 .0'"),
        ("a\x00b", "NUL"),
        ("a:1.0[x\x00]", "sub-part 'x\\x00' contains a NUL byte"),
        ("a\x01b", "control character"),
        ("a\x7fb", "control character"),
        ("a:1.0[x\x1by]", "sub-part"),
        ("a:1.0[x\u200by]", "control character"),
        ("a:1:2", "at most one ':'"),
        ("a:", "version after ':' is empty"),
        ("a:[x]", "version after ':' is empty"),
        ("a[]", "sub-part between '[' and ']' is empty"),
        ("a:1[]", "sub-part between '[' and ']' is empty"),
        ("a[x]:1", "one trailing '[...]'"),
        ("a[x][y]", "one trailing '[...]'"),
        ("a[x]y", "one trailing '[...]'"),
        ("a[x", "one trailing '[...]'"),
        ("a:.", "version '.'"),
        ("a:..", "version '..'"),
        ("a:-1", "version '-1'"),
        ("a:1.", "version '1.'"),
        ("a:" + "1" * 65, "at most 64"),
        (f"{_LONG_SEGMENT}:1", "asset name has a segment longer than 255 bytes"),
        (f"a:1[{'é' * 128}]", "sub-part has a segment longer than 255 bytes"),
        (_LONG_NAME, "asset name is longer than 512 bytes"),
        ("a/b.versions", "asset name 'a/b.versions' ends with a suffix the store layout reserves"),
        ("clf.meta:1.0", "asset name 'clf.meta' ends with a suffix"),
        ("a/b.versions[x]", "'a/b.versions' ends with a suffix"),
        ("-a", "must start and end with an ASCII letter or digit"),
        ("a_", "must start and end with an ASCII letter or digit"),
        ("é", "segment 'é' must use only ASCII"),
        ("a/b@c", "segment 'b@c' must use only ASCII"),
        ("s3://bucket/key", "version '//bucket/key'"),
        ("file:///tmp/x", "version '///tmp/x'"),
        ("C:\\models\\clf", "version '\\\\models"),
        ("a[C:x]", "drive letter"),
    ],
)
def test_parse_rejects(text: str, fragment: str) -> None:
    with pytest.raises(InvalidAssetSpecError) as info:
        AssetSpec.parse(text)
    assert fragment in info.value.message
    assert fragment in str(info.value)
    assert info.value.spec == text
    assert isinstance(info.value, ValueError)


def test_overlong_segment_just_fits() -> None:
    assert AssetSpec.parse("a" * 255).name == "a" * 255
    # 127 two-byte characters: 254 bytes.
    assert AssetSpec.parse(f"a[{'é' * 127}]").sub_part == "é" * 127


@pytest.mark.parametrize("value", [None, 1, b"a/b", ["a"], AssetSpec("a")])
def test_parse_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidAssetSpecError, match="must be a string") as info:
        AssetSpec.parse(cast("Any", value))
    assert type(value).__name__ in info.value.message
    assert info.value.spec is None


def test_versioning_major_minor() -> None:
    spec = AssetSpec.parse("a:1.2", versioning=MAJOR_MINOR)
    assert spec.version == "1.2"
    assert AssetSpec.parse("a:1[x]", versioning=MAJOR_MINOR) == AssetSpec("a", "1", "x")
    assert AssetSpec.parse("a", versioning=MAJOR_MINOR).version is None
    with pytest.raises(InvalidVersionError, match="major_minor") as info:
        AssetSpec.parse("a:1.x", versioning=MAJOR_MINOR)
    assert "'1.x'" in info.value.message
    assert info.value.spec == "a:1.x"
    with pytest.raises(InvalidVersionError, match="major_minor"):
        AssetSpec.parse("a:01", versioning=MAJOR_MINOR)


def test_generic_version_errors_are_version_errors() -> None:
    with pytest.raises(InvalidVersionError, match="version '-1'"):
        AssetSpec.parse("a:-1", versioning=MAJOR_MINOR)
    with pytest.raises(InvalidVersionError, match=r"version '1\.'"):
        AssetSpec.parse("a:1.")


def test_versioning_simple_date() -> None:
    spec = AssetSpec.parse("a:2024-01-02T03-04-05Z", versioning=SIMPLE_DATE)
    assert spec.version == "2024-01-02T03-04-05Z"
    with pytest.raises(InvalidVersionError, match="simple_date") as info:
        AssetSpec.parse("a:2024-13-45T00-00-00Z", versioning=SIMPLE_DATE)
    assert info.value.spec == "a:2024-13-45T00-00-00Z"
    with pytest.raises(InvalidVersionError, match="simple_date"):
        AssetSpec.parse("a:1.2", versioning=SIMPLE_DATE)


# --- properties ------------------------------------------------------------------------

_SAFE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_name_segments = st.builds(
    lambda first, middle, last: first + middle + last,
    st.sampled_from(_SAFE_CHARS),
    st.text(alphabet=_SAFE_CHARS + "-_.", max_size=10),
    st.sampled_from(_SAFE_CHARS),
) | st.sampled_from(_SAFE_CHARS)
_names = (
    st.lists(_name_segments, min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda name: not name.endswith((".versions", ".meta")))
)
_versions = st.one_of(
    st.none(),
    st.builds(lambda major, minor: f"{major}.{minor}", st.integers(0, 999), st.integers(0, 999)),
    st.integers(0, 999).map(str),
    st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True),
)
# Printable unicode except separators and the characters the grammar or the checks reserve.
_sub_part_chars = st.characters(
    exclude_categories=("C", "Z"), exclude_characters="/\\[]:", codec="utf-8"
)
_sub_segments = st.text(alphabet=_sub_part_chars, min_size=1, max_size=20).filter(
    lambda segment: segment not in (".", "..")
)
_sub_parts = st.none() | st.lists(_sub_segments, min_size=1, max_size=4).map("/".join)
_specs = st.builds(AssetSpec, _names, _versions, _sub_parts)


@given(_specs)
def test_round_trip(spec: AssetSpec) -> None:
    text = str(spec)
    parsed = AssetSpec.parse(text)
    assert parsed == spec
    assert hash(parsed) == hash(spec)
    assert str(parsed) == text
    assert repr(parsed) == f"AssetSpec({text!r})"


def _assert_safe(spec: AssetSpec) -> None:
    for path in (spec.name, spec.sub_part):
        if path is None:
            continue
        segments = path.split("/")
        assert ".." not in segments
        assert "." not in segments
        assert "" not in segments
        assert not path.startswith("/")
        assert "\\" not in path
        assert "\x00" not in path
        assert not any(char.isspace() for char in path)
    assert spec.version is None or ("/" not in spec.version and spec.version not in (".", ".."))


def _parse_or_error(text: str) -> AssetSpec | InvalidAssetSpecError:
    # Any other exception escapes and fails the test.
    try:
        return AssetSpec.parse(text)
    except InvalidAssetSpecError as exc:
        return exc


@given(st.text())
def test_fuzz_arbitrary_text(text: str) -> None:
    result = _parse_or_error(text)
    if isinstance(result, InvalidAssetSpecError):
        assert result.spec == text
    else:
        _assert_safe(result)
        assert AssetSpec.parse(str(result)) == result


# Text made mostly of the grammar's own punctuation, so that fuzzing reaches deep branches.
@given(st.text(alphabet="ab1./:[]\\ \t\x00\x1b-_é", max_size=30))
def test_fuzz_grammar_characters(text: str) -> None:
    result = _parse_or_error(text)
    if isinstance(result, InvalidAssetSpecError):
        assert result.spec == text
    else:
        _assert_safe(result)
        assert str(result) == text
