"""Configurations and the dependency graph: discovery, overrides, hints, cycles."""

from __future__ import annotations

import itertools
import textwrap
import uuid
from pathlib import Path
from typing import ClassVar

import pytest

from aiomodelkit._errors import (
    ConfigError,
    DependencyCycleError,
    InvalidAssetSpecError,
    UnknownModelError,
)
from aiomodelkit._graph import ModelConfiguration, build_graph, find_model_types
from aiomodelkit._model import Model
from aiomodelkit._overrides import AssetPlan, find_in_override_dir, plan_asset, variable_stem
from aiomodelkit._settings import read_asset_overrides
from aiomodelkit._spec import AssetSpec
from aiomodelkit._versioning import MAJOR_MINOR


class Tok(Model[str, list[str]]):
    CONFIGURATIONS: ClassVar = {"tok": {"asset": "models/tok:1.2[vocab.txt]"}}

    def _predict(self, item: str) -> list[str]:
        return item.split()


class Clf(Model[str, bool]):
    CONFIGURATIONS: ClassVar = {
        "clf": {
            "asset": "models/clf",
            "model_dependencies": {"tokenizer": "tok"},
            "model_settings": {"threshold": 0.5},
        },
        "clf_plain": {"model_dependencies": ["tok"]},
    }

    def _predict(self, item: str) -> bool:
        return True


class Other(Model[int, int]):
    CONFIGURATIONS: ClassVar = {"other": {"model_dependencies": {"tok", "clf"}}}

    def _predict(self, item: int) -> int:
        return item


def test_configurations_and_closure() -> None:
    graph = build_graph([Clf, [Tok, Other]], required_models=["clf"])
    assert set(graph.configurations) == {"tok", "clf", "clf_plain", "other"}
    assert graph.required == ("clf",)
    clf = graph.configurations["clf"]
    assert clf.model_type is Clf
    assert clf.asset == AssetSpec("models/clf")
    assert dict(clf.model_dependencies) == {"tokenizer": "tok"}
    assert dict(clf.model_settings) == {"threshold": 0.5}
    assert dict(graph.configurations["clf_plain"].model_dependencies) == {"tok": "tok"}
    assert dict(graph.configurations["other"].model_dependencies) == {"tok": "tok", "clf": "clf"}
    assert graph.configurations["tok"].asset == AssetSpec("models/tok", "1.2", "vocab.txt")
    assert graph.closure(["clf"]) == ("tok", "clf")
    assert graph.closure(["other"]) == ("tok", "clf", "other")
    order = graph.order
    assert order.index("tok") < order.index("clf") < order.index("other")
    # Without required_models, every key is required.
    assert set(build_graph([Clf, Tok]).required) == {"tok", "clf", "clf_plain"}


def test_unknown_keys_get_a_hint() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'clff'; did you mean 'clf'") as e:
        build_graph([Clf, Tok], required_models=["clff"])
    assert e.value.model == "clff"
    assert isinstance(e.value, ConfigError)

    class Broken(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"broken": {"model_dependencies": {"t": "tokk"}}}

        def _predict(self, item: int) -> int:
            return item

    with pytest.raises(UnknownModelError, match=r"depends on unknown model 'tokk'.*'tok'") as e:
        build_graph([Broken, Tok])
    assert e.value.model == "broken"
    graph = build_graph([Tok])
    with pytest.raises(UnknownModelError, match="did you mean 'tok'"):
        graph.check("tk")
    with pytest.raises(UnknownModelError, match="no_such"):
        graph.closure(["no_such"])


def test_cycles_are_named() -> None:
    class A(Model[int, int]):
        CONFIGURATIONS: ClassVar = {
            "a": {"model_dependencies": ["b"]},
            "c": {"model_dependencies": ["a"]},
        }

        def _predict(self, item: int) -> int:
            return item

    class B(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"b": {"model_dependencies": ["c"]}}

        def _predict(self, item: int) -> int:
            return item

    with pytest.raises(DependencyCycleError, match="dependency cycle") as info:
        build_graph([A, B], required_models=["a"])
    cycle = info.value.cycle
    assert cycle is not None
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    # Each key depends on the next one.
    for key, needs in itertools.pairwise(cycle):
        assert f"{key} -> {needs}" in str(info.value)
        deps = {"a": "b", "b": "c", "c": "a"}
        assert deps[key] == needs

    class Selfish(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"me": {"model_dependencies": ["me"]}}

        def _predict(self, item: int) -> int:
            return item

    with pytest.raises(DependencyCycleError, match="me -> me"):
        build_graph(Selfish)


def test_configuration_overrides() -> None:
    graph = build_graph(
        [Clf, Tok],
        configuration={
            "clf": {"asset": "models/clf:2", "model_settings": {"threshold": 0.9}},
            "tok": ModelConfiguration(model_type=Tok),
            "extra": {"model_type": Other, "model_dependencies": ["tok"]},
        },
    )
    clf = graph.configurations["clf"]
    assert clf.asset == AssetSpec("models/clf", "2")
    assert dict(clf.model_settings) == {"threshold": 0.9}
    assert dict(clf.model_dependencies) == {"tokenizer": "tok"}  # untouched field kept
    assert graph.configurations["tok"].asset is None  # replaced whole
    assert graph.configurations["extra"].model_type is Other
    with pytest.raises(UnknownModelError, match="give a model_type"):
        build_graph([Clf, Tok], configuration={"clff": {"asset": "x"}})


def test_required_models_dict_merges_settings() -> None:
    graph = build_graph(
        [Clf, Tok], required_models={"clf": {"asset_path": "/m/clf", "extra": 1}, "tok": {}}
    )
    assert graph.required == ("clf", "tok")
    assert dict(graph.configurations["clf"].model_settings) == {
        "threshold": 0.5,
        "asset_path": "/m/clf",
        "extra": 1,
    }


def test_malformed_configurations() -> None:
    def model_with(conf: dict[str, object]) -> type[Model[int, int]]:
        class Bad(Model[int, int]):
            CONFIGURATIONS: ClassVar = {"bad": conf}

            def _predict(self, item: int) -> int:
                return item

        return Bad

    with pytest.raises(ConfigError, match=r"'model_dependency'.*did you mean 'model_dependencies'"):
        build_graph(model_with({"model_dependency": ["x"]}))
    with pytest.raises(ConfigError, match="model_dependencies must be"):
        build_graph(model_with({"model_dependencies": "tok"}))
    with pytest.raises(ConfigError, match="bad dependency"):
        build_graph(model_with({"model_dependencies": {"t": 3}}))
    with pytest.raises(ConfigError, match="model_settings must be a dict"):
        build_graph(model_with({"model_settings": [1]}))
    with pytest.raises(ConfigError, match="asset must be a spec string"):
        build_graph(model_with({"asset": 3}))
    with pytest.raises(InvalidAssetSpecError) as info:
        build_graph(model_with({"asset": "models/../x"}))
    assert "in the configuration of model 'bad'" in info.value.__notes__
    with pytest.raises(ConfigError, match="must be a dict"):
        build_graph(model_with({}), configuration={"bad": 3})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="not a Model subclass"):
        build_graph(Tok, configuration={"x": {"model_type": int}})

    class NoPredict(Model[int, int]):
        pass

    with pytest.raises(ConfigError, match="overrides neither"):
        build_graph(Tok, configuration={"x": {"model_type": NoPredict}})


def test_one_key_two_classes_is_refused() -> None:
    class Again(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"tok": {}}

        def _predict(self, item: int) -> int:
            return item

    with pytest.raises(ConfigError, match="configured by both Tok and"):
        build_graph([Tok, Again])


def test_subclasses_do_not_inherit_configurations() -> None:
    class SubTok(Tok):
        pass

    assert find_model_types([Tok, SubTok, Tok]) == [Tok, SubTok]
    graph = build_graph([Tok, SubTok])
    assert graph.configurations["tok"].model_type is Tok


def test_models_from_a_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"pkg_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "base.py").write_text(
        textwrap.dedent(
            """
            from aiomodelkit._model import Model

            class Base(Model[str, str]):
                '''No configurations: not collected.'''

            class Echo(Base):
                CONFIGURATIONS = {"echo": {}}

                def _predict(self, item: str) -> str:
                    return item
            """
        )
    )
    (package / "sub" / "deep.py").write_text(
        textwrap.dedent(
            f"""
            from {name}.base import Base, Echo  # re-exported: collected once

            class Shout(Base):
                CONFIGURATIONS = {{"shout": {{"model_dependencies": ["echo"]}}}}

                def _predict(self, item: str) -> str:
                    return item.upper()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    types = find_model_types(name)
    assert sorted(t.__name__ for t in types) == ["Echo", "Shout"]
    graph = build_graph(name, required_models=["shout"])
    assert graph.closure(graph.required) == ("echo", "shout")
    with pytest.raises(ConfigError, match="no such module"):
        find_model_types(f"{name}_missing")
    with pytest.raises(ConfigError, match="must be Model classes"):
        find_model_types([Tok, 3])  # type: ignore[list-item]


# -- asset override planning (pure, before any I/O) -----------------------------------------


def test_variable_stem() -> None:
    assert variable_stem("models/my-clf.v2") == "MODELS_MY_CLF_V2"
    assert variable_stem("a/-./b") == "A_B"


def test_read_asset_overrides_keeps_only_per_asset_variables() -> None:
    found = read_asset_overrides(
        {
            "AIOMODELKIT_MODELS_CLF_FILE": "/a",
            "aiomodelkit_models_tok_version": "1.2",
            "MODELKIT_X_FILE": "/x",
            "AIOMODELKIT_LOCK_FILE": "/settings/field",
            "AIOMODELKIT_STORAGE": "s3://b",
            "OTHER_FILE": "/o",
        }
    )
    assert found == {
        "AIOMODELKIT_MODELS_CLF_FILE": "/a",
        "AIOMODELKIT_MODELS_TOK_VERSION": "1.2",
        "MODELKIT_X_FILE": "/x",
    }


def test_plan_asset_precedence() -> None:
    spec = AssetSpec.parse("models/clf:1.0[w.bin]")
    env = {
        "AIOMODELKIT_MODELS_CLF_VERSION": "2.3",
        "MODELKIT_MODELS_CLF_VERSION": "9.9",
        "MODELKIT_MODELS_CLF_FILE": "/env/file",
    }
    plan = plan_asset(spec, {"asset_path": "/explicit"}, env, MAJOR_MINOR, key="clf")
    assert (plan.path, plan.source) == (Path("/explicit"), "asset_path")
    assert plan.spec == AssetSpec("models/clf", "2.3", "w.bin")  # our variable wins, sub-part kept
    plan = plan_asset(spec, {}, env, MAJOR_MINOR, key="clf")
    assert (plan.path, plan.source, plan.origin) == (
        Path("/env/file"),
        "env_file",
        "MODELKIT_MODELS_CLF_FILE",
    )
    plan = plan_asset(spec, {}, {}, MAJOR_MINOR, key="clf")
    assert (plan.spec, plan.path, plan.source) == (spec, None, None)
    assert plan_asset(None, {}, env, MAJOR_MINOR, key="x") == AssetPlan(None)
    assert plan_asset(None, {"asset_path": "/p"}, {}, MAJOR_MINOR, key="x").path == Path("/p")
    with pytest.raises(ConfigError, match="asset_path must be a path"):
        plan_asset(spec, {"asset_path": 3}, {}, MAJOR_MINOR, key="clf")
    with pytest.raises(InvalidAssetSpecError):
        plan_asset(spec, {}, {"AIOMODELKIT_MODELS_CLF_VERSION": "1.x"}, MAJOR_MINOR, key="c")


def test_find_in_override_dir(tmp_path: Path) -> None:
    for version in ("1.0", "1.2", "2.0"):
        (tmp_path / "m" / version).mkdir(parents=True)
        (tmp_path / "m" / version / "w.bin").write_text(version)
    (tmp_path / "m" / ".1.2.SUCCESS").write_text("")
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / "0.1").write_text("a file asset")

    def find(text: str) -> tuple[str, Path] | None:
        return find_in_override_dir(tmp_path, AssetSpec.parse(text), MAJOR_MINOR)

    assert find("m:1.0") == ("1.0", tmp_path / "m" / "1.0")
    assert find("m:1[w.bin]") == ("1.2", tmp_path / "m" / "1.2" / "w.bin")
    assert find("m") == ("2.0", tmp_path / "m" / "2.0")
    assert find("file") == ("0.1", tmp_path / "file" / "0.1")
    assert find("m:1.1") is None
    assert find("m:3") is None
    assert find("m:1.0[missing.bin]") is None
    assert find("absent") is None
