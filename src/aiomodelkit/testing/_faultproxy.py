"""A fault-injecting HTTP reverse proxy in front of a loopback S3, GCS or Azure server, for tests.

Clients talk to the proxy as if it were the server (``endpoint_url=proxy.endpoint_url`` for
S3, ``api_root=proxy.endpoint_url`` for GCS, ``BlobEndpoint=<proxy>/<account>`` for Azurite);
the proxy forwards every request to the upstream server, streaming bodies both ways, and
applies the :class:`ProxyRule` s it holds (:mod:`._faults`, :mod:`._throttle`). It also
counts every request per (normalised method, key), server side, so a test can prove "each
object was downloaded exactly once" whatever the client thinks.

It is built on aiohttp, so it runs on asyncio: ``with FaultProxy(...)`` runs it on its own
event loop in a thread (from sync tests, or to keep it off the loop under test), and
``async with FaultProxy(...)`` runs it on the current loop. It listens on ``127.0.0.1``
only and refuses an upstream that is not a loopback address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
from collections import Counter
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from aiomodelkit._lifecycle import AsyncResource

from ._faultplan import FaultPlan, RuleState
from ._faults import Api, ProxyRequest, ProxyRule, ReplaceObject, describe_request, error_body
from ._faultwire import forwarded_headers, open_upstream_session, overwrite_upstream, relay
from ._loopback import ensure_loopback
from ._loopthread import LoopThread
from ._process import HOST, BackgroundServer

if TYPE_CHECKING:
    from ._throttle import ThrottleState

__all__ = ["FaultProxy"]


class FaultProxy(AsyncResource, BackgroundServer):
    """A reverse proxy on ``127.0.0.1`` that forwards to ``upstream`` and injects faults.

    Args:
        upstream: ``http://127.0.0.1:PORT`` of the real server (loopback only).
        api: ``"s3"``, ``"gcs"`` or ``"azure"``; by default guessed per request from the
            path, between S3 and GCS (GCS paths start with ``/storage/v1/``,
            ``/download/storage/v1/`` or ``/upload/...``). Azurite's paths look like S3's:
            give ``"azure"`` in front of it.
        chunk_size: bytes relayed per write.
        startup_timeout: seconds to wait for the proxy thread to listen.

    Example:
        >>> import urllib.error, urllib.request
        >>> from aiomodelkit.testing import FakeGCSServer, FaultProxy, ProxyRule, ServerError
        >>> opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        >>> with FakeGCSServer() as gcs, FaultProxy(gcs.endpoint_url) as proxy:
        ...     gcs.create_bucket("models")
        ...     rule = proxy.add(ProxyRule(ServerError(503), method="LIST", times=1))
        ...     listing = f"{proxy.endpoint_url}/storage/v1/b/models/o"
        ...     try:
        ...         opener.open(listing)
        ...     except urllib.error.HTTPError as exc:
        ...         print(exc.code, "then", end=" ")
        ...         exc.close()
        ...     with opener.open(listing) as response:
        ...         print(response.status)
        ...     print(proxy.count("LIST"), proxy.fired(rule))
        503 then 200
        2 1
    """

    def __init__(
        self,
        upstream: str,
        *,
        api: Api | None = None,
        chunk_size: int = 64 * 1024,
        startup_timeout: float = 10.0,
    ) -> None:
        self._upstream = _loopback_origin(upstream)
        self._api: Api | None = api
        self._chunk_size = chunk_size
        self._startup_timeout = startup_timeout
        self._lock = threading.Lock()  # rules, counts, log and errors; any thread
        self._rules: list[RuleState] = []
        self._counts: Counter[tuple[str, str | None]] = Counter()
        self._log: list[ProxyRequest] = []
        self._errors: list[BaseException] = []
        self._gates: dict[ProxyRule, asyncio.Event] = {}  # the proxy's loop only
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.BaseRunner | None = None
        self._port: int | None = None
        # ``with`` (start/stop) holds the proxy open on a loop of its own, in a thread.
        self._thread = LoopThread(self, name=f"FaultProxy(-> {self._upstream})")

    def __repr__(self) -> str:
        state = self.endpoint_url if self._port is not None else "stopped"
        return f"FaultProxy({state} -> {self._upstream})"

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``: give it to clients instead of the server's URL."""
        if self._port is None:
            raise RuntimeError("the proxy is not running; use it as a context manager")
        return f"http://{HOST}:{self._port}"

    # -- rules and counts (any thread) ------------------------------------------------------

    def add(self, rule: ProxyRule) -> ProxyRule:
        """Apply ``rule`` to later requests (after the rules already added); returns it."""
        with self._lock:
            self._rules.append(RuleState(rule))
        return rule

    def remove(self, rule: ProxyRule) -> None:
        """Stop applying ``rule``."""
        with self._lock:
            self._rules = [state for state in self._rules if state.rule is not rule]

    def clear(self) -> None:
        """Remove every rule; counts and the request log are kept."""
        with self._lock:
            self._rules = []

    def reset(self) -> None:
        """Remove every rule and forget every request and error."""
        with self._lock:
            self._rules = []
            self._counts.clear()
            self._log.clear()
            self._errors.clear()

    def fired(self, rule: ProxyRule) -> int:
        """How many requests ``rule`` has disturbed (with a ``Throttle``: has throttled)."""
        with self._lock:
            return sum(state.fired for state in self._rules if state.rule is rule)

    def count(self, method: str | None = None, key: str | None = None) -> int:
        """Requests received with this normalised method and exact key (``None``: any)."""
        with self._lock:
            return sum(
                n
                for (m, k), n in self._counts.items()
                if (method is None or m == method.upper()) and (key is None or k == key)
            )

    def counts(self) -> Counter[tuple[str, str | None]]:
        """Requests received per (normalised method, key), as a copy."""
        with self._lock:
            return Counter(self._counts)

    @property
    def requests(self) -> list[ProxyRequest]:
        """Every request received, in order, with the faults applied to it."""
        with self._lock:
            return list(self._log)

    @property
    def errors(self) -> list[BaseException]:
        """Failures of the proxy itself (a replacement that failed, a bug); empty if fine."""
        with self._lock:
            return list(self._errors)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Run the proxy on its own event loop in a daemon thread; returns once it listens.

        Raises:
            RuntimeError: it is already running, or could not start.
        """
        if self._port is not None:
            raise RuntimeError("the proxy is already running")
        self._thread.start(self._startup_timeout)

    def stop(self) -> None:
        """Stop the thread started by :meth:`start`; idempotent."""
        self._thread.stop()

    async def _aopen(self) -> None:
        # Entering a running proxy (``async with`` or start()) raises RuntimeError: the
        # state guard of AsyncResource covers both, as start() enters it on its thread.
        self._session = open_upstream_session()
        try:
            # An Application rather than a bare web.Server: it answers "Expect: 100-continue"
            # (botocore sends it with uploads), and the client would wait for that forever.
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            # A short shutdown: a stalled handler must not hold up the end of a test.
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
            await runner.setup()
            self._runner = runner
            site = web.TCPSite(runner, HOST, 0, backlog=1024)
            await site.start()
            self._port = int(runner.addresses[0][1])
        except BaseException:
            await self._aclose()
            raise

    async def _aclose(self) -> None:
        runner, self._runner = self._runner, None
        session, self._session = self._session, None
        self._port = None
        try:
            if runner is not None:
                await runner.cleanup()
        finally:
            for gate in self._gates.values():
                gate.set()
            if session is not None:
                await session.close()

    # -- serving (the proxy's loop) ---------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not request.raw_path.startswith("/"):
            # An absolute-form target ("GET http://elsewhere/"): we only forward upstream.
            return web.Response(status=400, text="FaultProxy forwards origin-form requests only")
        info = describe_request(request.method, request.raw_path, request.headers, self._api)
        info, rule, gates, admitted = self._decide(info)
        plan: FaultPlan | None = None
        try:
            for gate in gates:
                await gate.wait()
            plan = FaultPlan.of(rule.faults if rule is not None else (), info.api)
            return await self._respond(request, info, plan)
        except Exception as exc:  # a bug of ours: make it visible to the test
            self._record(exc)
            raise
        finally:
            # The answer has been sent to its end, or never will be (a dropped connection,
            # cancelled at a gate): the request leaves its throttles' budgets.
            self._release(admitted)
            if plan is not None and plan.replace is not None and rule is not None:
                await self._replace(info, plan.replace, self._gates[rule])

    def _decide(
        self, info: ProxyRequest
    ) -> tuple[ProxyRequest, ProxyRule | None, list[asyncio.Event], list[ThrottleState]]:
        with self._lock:
            self._counts[info.method, info.key] += 1
            chosen: RuleState | None = None
            gates = []
            admitted = []  # the throttles this request counts against until it ends
            for state in self._rules:
                if not state.rule.matches(info):
                    continue
                if chosen is None and state.fires():
                    chosen = state
                    continue
                if chosen is None and state.throttle is not None:
                    admitted.append(state.throttle.admit())
                gate = self._gates.get(state.rule)
                if gate is not None and not gate.is_set():
                    gates.append(gate)
            faults = chosen.rule.faults if chosen is not None else ()
            if chosen is not None and any(isinstance(f, ReplaceObject) for f in faults):
                self._gates[chosen.rule] = asyncio.Event()
            info = dataclasses.replace(info, faults=tuple(type(f).__name__ for f in faults))
            self._log.append(info)
        return info, chosen.rule if chosen is not None else None, gates, admitted

    def _release(self, admitted: list[ThrottleState]) -> None:
        with self._lock:
            for throttle in admitted:
                throttle.release()

    async def _respond(
        self, request: web.BaseRequest, info: ProxyRequest, plan: FaultPlan
    ) -> web.StreamResponse:
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.status is not None:
            body, headers = error_body(info, plan.status)
            if plan.retry_after is not None:
                headers["Retry-After"] = f"{plan.retry_after:.3f}".rstrip("0").rstrip(".")
            return web.Response(status=plan.status, body=body, headers=headers)
        assert self._session is not None
        try:
            upstream = await self._session.request(
                request.method,
                URL(self._upstream + request.raw_path, encoded=True),
                headers=forwarded_headers(request.headers),
                data=request.content if request.body_exists else None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError) as exc:
            return web.Response(status=502, text=f"FaultProxy: upstream failed: {exc!r}")
        try:
            return await relay(request, upstream, plan, self._chunk_size)
        finally:
            upstream.release()

    async def _replace(self, info: ProxyRequest, fault: ReplaceObject, gate: asyncio.Event) -> None:
        try:
            if fault.callback is None:
                assert self._session is not None
                await overwrite_upstream(self._session, self._upstream, info, fault)
            elif inspect.iscoroutinefunction(fault.callback):
                await fault.callback(info)
            else:
                result = await asyncio.to_thread(fault.callback, info)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            self._record(exc)
        finally:
            gate.set()

    def _record(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)


def _loopback_origin(url: str) -> str:
    """``http://host:port`` of ``url``, which must be a plain-HTTP loopback origin."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the upstream must be http://HOST:PORT, not {url!r}")
    if parts.username or parts.password or parts.path.strip("/") or parts.query:
        raise ValueError("the upstream must be a bare origin: http://HOST:PORT")
    ensure_loopback(parts.hostname, role="upstream")
    return f"http://{parts.netloc}"
