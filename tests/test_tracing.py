"""OpenTelemetry traces of a startup (issue 16): the span tree, its attributes and errors.

Spans go to the SDK's in-memory exporter through a provider of each test's own
(``use_tracer_provider``): OpenTelemetry's global provider can be set only once per process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, ClassVar

import anyio
import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import aiomodelkit
from aiomodelkit import AssetsManager, LoadError, Settings, _trace
from aiomodelkit._library import ModelLibrary
from aiomodelkit._model import Model
from aiomodelkit._spec import AssetSpec
from aiomodelkit._trace import span, use_tracer_provider

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def parent_of(child: ReadableSpan) -> int | None:
    return child.parent.span_id if child.parent is not None else None


def span_id(of: ReadableSpan) -> int:
    assert of.context is not None
    return int(of.context.span_id)


def times(of: ReadableSpan) -> tuple[int, int]:
    assert of.start_time is not None
    assert of.end_time is not None
    return of.start_time, of.end_time


class Traces:
    """What one test recorded: spans by name, and their links."""

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        self.provider = provider
        self.exporter = exporter

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str, **attributes: object) -> ReadableSpan:
        """The one span called ``name`` whose attributes include ``attributes``."""
        wanted = {f"aiomodelkit.{key}": value for key, value in attributes.items()}
        (found,) = [s for s in self.named(name) if wanted.items() <= (s.attributes or {}).items()]
        return found

    def children(self, parent: ReadableSpan, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans if parent_of(s) == span_id(parent) and name in (None, s.name)]

    def child(self, parent: ReadableSpan, name: str) -> ReadableSpan:
        (found,) = self.children(parent, name)
        return found


@pytest.fixture
def traces() -> Iterator[Traces]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    try:
        yield Traces(provider, exporter)
    finally:
        use_tracer_provider(None)
        provider.shutdown()


async def publish(tmp_path: Path, name: str, content: str) -> None:
    source = tmp_path / "sources" / name
    source.mkdir(parents=True)
    (source / "weights.txt").write_text(content)
    settings = Settings(storage=(tmp_path / "store").as_uri(), assets_dir=tmp_path / "pub")
    async with AssetsManager(settings=settings) as am:
        await am.new(source, name)


class Leaf(Model[str, str]):
    CONFIGURATIONS: ClassVar = {
        "tok": {"asset": "models/tok"},
        "emb": {"asset": "models/emb"},
    }

    async def _load(self) -> None:
        await anyio.sleep(0.01)

    def _predict(self, item: str) -> str:
        return item


class Head(Leaf):
    CONFIGURATIONS: ClassVar = {
        "clf": {"asset": "models/clf", "model_dependencies": ["tok", "emb"]},
        "solo": {"model_dependencies": []},  # independent, and without an asset
    }


CONTENTS = {"models/tok": "a b c", "models/emb": "0.1 0.2", "models/clf": "weights"}


async def test_a_startup_is_one_tree_of_models_phases_and_fetches(
    tmp_path: Path, traces: Traces
) -> None:
    (tmp_path / "store").mkdir()
    for name, content in CONTENTS.items():
        await publish(tmp_path, name, content)
    settings = Settings(storage=(tmp_path / "store").as_uri(), assets_dir=tmp_path / "cache")
    traces.exporter.clear()  # the publications'
    app = traces.provider.get_tracer("the application")
    with app.start_as_current_span("request"):
        async with ModelLibrary([Leaf, Head], settings=settings):
            pass

    (request,) = traces.named("request")
    start = traces.one("aiomodelkit.library.start")
    assert parent_of(start) == span_id(request)  # under the application's current span
    assert start.attributes == {
        "aiomodelkit.library.models": 4,
        "aiomodelkit.library.required": ("tok", "emb", "clf", "solo"),
    }
    keys = ("tok", "emb", "clf", "solo")
    models = {key: traces.one("aiomodelkit.model", model=key) for key in keys}
    assert len(traces.named("aiomodelkit.model")) == 4
    for model in models.values():
        assert parent_of(model) == span_id(start)
        assert model.status.status_code is StatusCode.UNSET
    clf_attributes = {"aiomodelkit.model": "clf", "aiomodelkit.asset.spec": "models/clf"}
    assert models["clf"].attributes == clf_attributes

    # Each model with an asset: fetch, wait, load, in that order; the asset fetch under
    # the fetch phase, with its own phases under it.
    store_url = (tmp_path / "store").as_uri()
    for key in ("tok", "emb", "clf"):
        fetch_phase = traces.child(models[key], "aiomodelkit.model.fetch")
        wait = traces.child(models[key], "aiomodelkit.model.wait")
        load = traces.child(models[key], "aiomodelkit.model.load")
        assert times(fetch_phase)[1] <= times(wait)[0] <= times(wait)[1] <= times(load)[0]
        assert fetch_phase.attributes == {
            "aiomodelkit.asset.spec": f"models/{key}",
            "aiomodelkit.asset.version": "0.0",
            "aiomodelkit.asset.source": "store",
        }
        fetch = traces.child(fetch_phase, "aiomodelkit.fetch")
        size = len(CONTENTS[f"models/{key}"])
        assert fetch.attributes == {
            "aiomodelkit.asset.spec": f"models/{key}",
            "aiomodelkit.store": store_url,
            "aiomodelkit.asset.version": "0.0",
            "aiomodelkit.asset.source": "store",
            "aiomodelkit.asset.bytes": size,
            "aiomodelkit.asset.objects": 1,
            "aiomodelkit.cache.hit": False,
        }
        phases = [s.name for s in sorted(traces.children(fetch), key=lambda s: times(s)[0])]
        assert phases == [
            "aiomodelkit.fetch.resolve",
            "aiomodelkit.fetch.lock",
            "aiomodelkit.fetch.download",
            "aiomodelkit.fetch.publish",
        ]
        download = traces.child(fetch, "aiomodelkit.fetch.download").attributes
        assert download == {"aiomodelkit.asset.objects": 1, "aiomodelkit.asset.bytes": size}
    # Dependencies first: the head's fetch starts once the leaves' assets are on disk,
    # and it loads once they have loaded.
    clf = models["clf"]
    clf_fetch = traces.child(clf, "aiomodelkit.model.fetch")
    clf_load = traces.child(clf, "aiomodelkit.model.load")
    for leaf in ("tok", "emb"):
        leaf_fetch = traces.child(models[leaf], "aiomodelkit.model.fetch")
        assert times(clf_fetch)[0] >= times(leaf_fetch)[1]
        leaf_load = traces.child(models[leaf], "aiomodelkit.model.load")
        assert times(clf_load)[0] >= times(leaf_load)[1]
    # Without an asset: no fetch, and waiting from the start, as the demo's timeline draws it.
    solo = models["solo"]
    phases = [s.name for s in traces.children(solo)]
    assert phases == ["aiomodelkit.model.wait", "aiomodelkit.model.load"]
    assert times(traces.child(solo, "aiomodelkit.model.wait"))[0] == times(solo)[0]
    # Every span ends inside its parent.
    by_id = {span_id(s): s for s in traces.spans}
    for child in traces.spans:
        if (parent := by_id.get(parent_of(child) or 0)) is not None:
            assert times(parent)[0] <= times(child)[0] <= times(child)[1] <= times(parent)[1]

    # A warm start: the same tree, every fetch a cache hit with nothing downloaded.
    traces.exporter.clear()
    async with ModelLibrary([Leaf, Head], settings=settings):
        pass
    assert len(traces.named("aiomodelkit.model")) == 4
    for fetch in traces.named("aiomodelkit.fetch"):
        assert fetch.attributes is not None
        assert fetch.attributes["aiomodelkit.cache.hit"] is True
        assert fetch.attributes["aiomodelkit.asset.bytes"] == 0
        assert fetch.attributes["aiomodelkit.asset.objects"] == 0
        assert fetch.attributes["aiomodelkit.asset.source"] == "cache"
        assert [s.name for s in traces.children(fetch)] == ["aiomodelkit.fetch.resolve"]
    assert len(traces.named("aiomodelkit.fetch")) == 3


class Failing(Model[str, str]):
    CONFIGURATIONS: ClassVar = {"bad": {}, "slow": {}}

    async def _load(self) -> None:
        if self.configuration_key == "bad":
            await anyio.sleep(0.01)
            raise ValueError("corrupt weights")
        await anyio.sleep_forever()  # cancelled when "bad" fails

    def _predict(self, item: str) -> str:
        return item


async def test_a_failing_load_is_an_error_on_its_spans_and_cancels_the_others_cleanly(
    tmp_path: Path, traces: Traces
) -> None:
    settings = Settings(assets_dir=tmp_path / "cache")
    with pytest.raises(LoadError, match="corrupt weights"):
        async with ModelLibrary([Failing], settings=settings):
            pass

    bad = traces.one("aiomodelkit.model", model="bad")
    load = traces.child(bad, "aiomodelkit.model.load")
    start = traces.one("aiomodelkit.library.start")
    for failed, error in ((load, "ValueError"), (bad, "LoadError"), (start, "LoadError")):
        assert failed.status.status_code is StatusCode.ERROR
        assert failed.status.description is not None
        assert failed.status.description.startswith(f"{error}: ")
        assert "corrupt weights" in failed.status.description
        (event,) = failed.events
        assert event.name == "exception"
        assert event.attributes is not None
        assert str(event.attributes["exception.type"]).rpartition(".")[2] == error
    # The model it cancelled ends as usual: no error, marked cancelled.
    slow = traces.one("aiomodelkit.model", model="slow")
    for cancelled in (slow, traces.child(slow, "aiomodelkit.model.load")):
        assert cancelled.status.status_code is StatusCode.UNSET
        assert cancelled.events == ()
        assert cancelled.attributes is not None
        assert cancelled.attributes["aiomodelkit.cancelled"] is True


class Lazy(Leaf):
    CONFIGURATIONS: ClassVar = {"leaf": {}, "top": {"model_dependencies": ["leaf"]}}


async def test_a_lazy_load_is_traced_under_the_callers_span(tmp_path: Path, traces: Traces) -> None:
    settings = Settings(assets_dir=tmp_path / "cache", lazy_loading=True)
    app = traces.provider.get_tracer("the application")
    async with ModelLibrary([Lazy], settings=settings) as lib:
        assert traces.spans == ()  # nothing loads on entry
        with app.start_as_current_span("predict"):
            await lib.aget("top")
    (predict,) = traces.named("predict")
    for key in ("leaf", "top"):
        assert parent_of(traces.one("aiomodelkit.model", model=key)) == span_id(predict)
    assert traces.named("aiomodelkit.library.start") == []


async def test_a_swap_is_one_span_with_its_fetch(tmp_path: Path, traces: Traces) -> None:
    (tmp_path / "store").mkdir()
    await publish(tmp_path, "models/tok", "a b c")
    settings = Settings(storage=(tmp_path / "store").as_uri(), assets_dir=tmp_path / "cache")
    app = traces.provider.get_tracer("the application")
    async with ModelLibrary([Leaf], settings=settings, required_models=["tok"]) as lib:
        (tmp_path / "sources" / "models/tok" / "weights.txt").write_text("a b c d")
        async with AssetsManager(settings=settings) as am:
            await am.update(tmp_path / "sources" / "models/tok", "models/tok")
        traces.exporter.clear()
        with app.start_as_current_span("admin reload"):
            assert len(await lib.reload()) == 1
    (reload,) = traces.named("admin reload")
    swap = traces.one("aiomodelkit.model.swap", model="tok")
    assert parent_of(swap) == span_id(reload)
    assert swap.attributes == {"aiomodelkit.model": "tok", "aiomodelkit.asset.version": "0.1"}
    fetch = traces.child(swap, "aiomodelkit.fetch")
    assert fetch.attributes is not None
    assert fetch.attributes["aiomodelkit.asset.bytes"] == len("a b c d")


async def test_a_cancelled_span_ends_without_an_error(traces: Traces) -> None:
    with anyio.move_on_after(0):
        with span("aiomodelkit.fetch", spec="models/clf:1", bytes=None):
            await anyio.sleep(1)
    (cancelled,) = traces.spans
    assert cancelled.status.status_code is StatusCode.UNSET
    assert cancelled.attributes == {
        "aiomodelkit.asset.spec": "models/clf:1",  # None values are left out
        "aiomodelkit.cancelled": True,
    }


@pytest.mark.parametrize("imported", [False, True], ids=["not-imported", "no-sdk"])
def test_a_span_is_a_shared_no_op_until_the_application_installs_an_sdk(
    monkeypatch: pytest.MonkeyPatch, imported: bool
) -> None:
    monkeypatch.setattr(_trace, "_tracer", None)
    if imported:  # the API alone: its proxy provider, whose spans would not record
        monkeypatch.setattr(otel_trace, "get_tracer_provider", otel_trace.ProxyTracerProvider)
    else:
        monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with span("aiomodelkit.fetch", spec=AssetSpec.parse("models/clf:1")) as traced:
        traced.set(version="1.2")
        assert traced.started is None
    with span("aiomodelkit.fetch") as other:
        assert other is traced
    assert _trace._tracer is None  # looked up again next time


def test_the_global_provider_is_used_once_the_application_sets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(_trace, "_tracer", None)
    monkeypatch.setattr(otel_trace, "get_tracer_provider", lambda: provider)
    with span("aiomodelkit.fetch", spec=AssetSpec.parse("models/clf:1")):
        pass
    (recorded,) = exporter.get_finished_spans()
    assert recorded.attributes == {"aiomodelkit.asset.spec": "models/clf:1"}
    assert recorded.instrumentation_scope is not None
    assert recorded.instrumentation_scope.name == "aiomodelkit"
    assert recorded.instrumentation_scope.version == aiomodelkit.__version__


# A cold start that fetches from a local store, then checks what was imported. With
# ``block``, importing opentelemetry fails, as when the extra is not installed.
_WITHOUT_OTEL = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "opentelemetry":
            raise ImportError(f"blocked: {name}")
        return None

if BLOCK:
    sys.meta_path.insert(0, Blocker())

import pathlib
import anyio
from aiomodelkit import AssetsManager, Model, ModelLibrary, Settings

root = pathlib.Path(sys.argv[1])

class Clf(Model[str, str]):
    CONFIGURATIONS = {"clf": {"asset": "models/clf"}}

    def _predict(self, item: str) -> str:
        return (self.asset_path / "weights.txt").read_text()

async def main() -> None:
    (root / "store").mkdir()
    (root / "src").mkdir()
    (root / "src" / "weights.txt").write_text("ok")
    settings = Settings(storage=(root / "store").as_uri(), assets_dir=root / "cache")
    async with AssetsManager(settings=settings) as am:
        await am.new(root / "src", "models/clf")
    async with ModelLibrary([Clf], settings=settings) as lib:
        print(await lib.get("clf").predict("x"))

anyio.run(main)
assert not [name for name in sys.modules if name.startswith("opentelemetry")], "imported"
"""


@pytest.mark.parametrize("block", [True, False], ids=["not-installed", "installed"])
def test_aiomodelkit_never_imports_opentelemetry(tmp_path: Path, block: bool) -> None:
    """Installed or not, nothing of OpenTelemetry is imported unless the application does."""
    code = f"BLOCK = {block}\n" + textwrap.dedent(_WITHOUT_OTEL)
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
