"""Runtime: many models under a memory budget (Zipf traffic), and version swaps while serving.

Run from the repository root: ``python -m benchmarks.runtime [--part eviction|swap|all]``
(``--help`` lists the knobs). SeaweedFS (``aiomodelkit.testing``) serves the assets through
the latency proxy in its own process, as the harness's ``rtt20`` condition: 20 ms RTT, a
4 MiB window per connection. Results go to ``benchmarks/results/runtime.{json,md}``
(``--output NAME`` for others); a run of one part keeps the other part's last results there.

**Part 1, eviction.** ``--models`` (50) configurations of one Model class, each with its own
``--asset-mib`` (1 MiB) file asset, pinned (``bench/m07:0.0``, so a cached version costs no
request). ``_load`` reads the asset and sleeps ``--load-seconds`` (0.05) in its worker
thread, standing in for deserialisation; ``memory_bytes()`` is the asset's size. A stream of
``--requests`` (2,000) keys is drawn once (``--seed``) from a Zipf popularity over the models
(weight of rank r: 1 / r ** ``--zipf``), and ``--concurrency`` (8) clients take the next
request in turn: ``await (await lib.aget(key)).predict(i)``. Each run plays the same stream on:

* **bounded**: ``Settings(max_loaded_models=--max-loaded)`` (10);
* **unbounded**: no budget, lazy: each model loads on its first request and stays;
* **eager**: no budget, every model loaded on entry (the cold start, in the "open" column);

each first from an empty cache (**cold**: a model's first load fetches its asset over the
network), then again with a new library on the cache the cold pass filled (**warm**: a miss
only loads). A request is a **hit** if its model was loaded (``lib.status()[key].loaded``)
when the client asked: nothing awaits between that check and ``aget`` holding the model, so
it cannot be evicted in between, and ``aget``'s hold lasts until ``predict`` is running. The
``load_count`` before and after each hit is compared as a check ("anomalies": must be 0).
Misses are split into **first loads** (the model never loaded in this library: fetch and
load when cold) and **reloads** (evicted earlier: load only, from the cache); a miss that
finds its model loading for another request **joins** that load (misses - loads started
during the stream), so with concurrent clients the hit rate falls faster than the loads
rise: compare loads per request with the miss rate of the sequential LRU in the header.
Latency runs from ``aget`` to ``predict``'s return; percentiles are nearest-rank. **max
loaded** is ``status()`` sampled every 2 ms; **max open** is exact, counted by the models
themselves (``_load`` begun, ``close()`` not finished), and must stay within the budget.
Loads and evictions sum ``load_count`` / ``eviction_count``; the proxy counts store requests.
Figures are medians over ``--runs`` (3); every run is kept in the JSON.

**Part 2, swap.** One model on the partial spec ``bench/swap:1`` (version 1.0 published
first), a non-lazy unbounded library with ``Settings(watch_interval=--watch-interval)``
(1.0 s), a prediction every 5 ms throughout that must never fail. Each run publishes the next
1.x (``--swap-mib``, 16 MiB, labelled with its version in its first bytes, which the model
returns from ``predict``) through another manager straight to the store, then polls
``lib.get(key).predict()`` every 1 ms until the new version answers. Publish-to-serve runs
from ``update`` returning to that answer; its target is the watch interval + a plain fetch of
the same version (``fetch("bench/swap:1")`` on a warm connection, through the proxy, timed
after the swap) + ``--load-seconds`` + 100 ms. The watcher waits between 85 % and 100 % of
the interval, so a new version is seen within one interval and publish-to-serve is at most
about interval + fetch + load. Where in the watcher's cycle a publish lands follows the runs'
own cadence (a 0.5 s pause after each swap), not chance: at a 1 s interval, just after a
check, so the figures sit near that bound (benchmarks/README.md).
"swap s" is the engine's own ``ModelSwapped.seconds`` (its fetch start to the swap), when
emitted. Skipped, with a note, while ``Settings`` has no ``watch_interval``.

Modules: ``common`` (servers, shared helpers), ``eviction`` (part 1), ``swap`` (part 2),
``report`` (the results files), ``__main__`` (the options).
"""
