"""A fleet on one machine: N processes cold-start the same library at once (issue 18).

Run from the repository root: ``python -m benchmarks.fleet`` (``--help`` lists the knobs;
``--quick``: N=4, small assets, one run, under a minute). Results go to
``benchmarks/results/fleet.{json,md}`` (``--output NAME`` for others; ``--quick`` writes
``results/tmp/fleet-quick.*``); the throttled and the ``--no-throttle`` results are kept
side by side, each run replacing its own condition's.

**The fleet.** N pods (``--n 4,8,16``), each a fresh interpreter (:mod:`.child`) that
imports everything, then waits; all are released at the same instant and each opens a
``ModelLibrary`` of the same models, pinned (``--workload``: ``fleet`` by default, three
models over W4-like assets: an encoder of 64 MiB weights fetched in 8 ranges, 8 shards of
2 MiB and 100 files of 4 KiB, a tokenizer of 50 small files and an 8 MiB head: 88.6 MiB,
171 requests per cold start; or W1-W4 of the harness as one-model libraries; ``--small``:
14.2 MiB and 59 requests, W1-W4 at the harness's quick sizes). A pod is
ready when its library is open with every model loaded; it fails if a model failed (the
engine gave up after ``max_attempts``) or its process did. Each pod has its **own cache**
(``separate``: pods on different nodes) or all share **one cache directory** (``shared``,
``--shared-cache``: pods of one node on a host volume; the engine's per-version file lock
should make it one download). **Modes**, given to every pod as environment variables:
**fixed 64** (``AIOMODELKIT_ADAPTIVE_CONCURRENCY=false``, ``AIOMODELKIT_MAX_CONNECTIONS=64``)
and **adaptive** (``AIOMODELKIT_ADAPTIVE_CONCURRENCY=true``); ``--start-jitter S`` adds
``AIOMODELKIT_START_JITTER`` to both. pydantic-settings ignores an ``AIOMODELKIT_*``
variable that names no setting, so this runs on an engine with or without them (the results
say which; see :func:`~.__main__._engine`).

**The store** (:mod:`.servers`): pods → latency proxy (its own process, 20 ms RTT, 4 MiB
window per connection) → ``FaultProxy`` with a ``Throttle`` rule (a thread of the launcher)
→ SeaweedFS. The latency is outermost so that "slow down" answers cost the pods a round
trip, as from S3. Every request into the bucket, any method, shares one budget, as a hot
prefix does:

* ``--rate 200`` requests/s. S3 serves ~5,500 GET/HEAD per second per partitioned prefix
  (GCS ~5,000 reads/s per bucket at first), and a cloud pod alone asks up to ~2,000 small
  GETs/s (or ~150 8 MiB parts/s on a 10 Gbit/s link), so a handful of pods fill a fresh
  prefix and 200 pods over-ask it several-fold. Here the two cores serve all pods together
  ~600-800 small requests/s through the two Python proxies (one process did W3's 2,000 GETs
  in 2.6 s): 200/s is about a quarter of that, low enough that the throttle, not the CPU,
  binds from N=4 on, and N=16 pods ask for 16 x 171 = 2,736 requests, 14 s of budget, where
  unthrottled they would take a few seconds: the same several-fold over-ask.
* ``--concurrency 64`` requests in flight: one pod's fixed budget. One pod at fixed 64 fits
  exactly; N pods at fixed 64 put N x 64 requests in flight against it, as a fleet's
  thousands of connections overrun a cold prefix. It also keeps the fault proxy (Python,
  one thread) within what it relays comfortably.

A fresh throttle per run (a full bucket: one second's burst passes at first, as on S3).
``--no-throttle`` removes it, to check that adapting costs nothing when the store keeps up.

**Measured per run** (:class:`~.common.FleetRun`; times from the release): **all ready**,
when the last pod was ready ("never" if one failed); each pod's **time to ready**, p50 and
p99 (nearest rank; a failed pod counts as never); **requests** the fault proxy received
(refused ones included) and the **503s** its throttle sent (``proxy.fired(rule)``);
**retries**, the ``Retrying`` events in every pod; **bytes from the store**, what the
latency proxy carried to the pods (bodies and headers), also as a multiple of one copy of
the library; **failed starts**; CPU of the pods, SeaweedFS and the proxies. Each pod also
reports the requests it counted (``StoreRequest`` events) and, where the engine has it,
``FetchFinished.requests``. Rows are medians over ``--runs`` (3) measured runs per (library,
cache, N, mode); within each run the modes alternate (fixed first in odd runs, adaptive in
even ones), after one warm-up fleet at the smallest N.

**Targets** (printed and in the results): shared cache -> bytes from the store one copy
(within 5 %: headers, metas) whatever N; separate caches, throttled -> adaptive all-ready
<= 0.7x fixed-64's at N=16 with zero failed starts; no throttle -> adaptive within 5 % of
fixed-64.

Modules: ``common`` (modes, libraries, records: pure), ``servers`` (the chain),
``pods`` (one fleet start), ``child`` (one pod), ``report`` (medians, targets, files),
``__main__`` (the options and the alternation).
"""
