"""The cold-start benchmark suite: aiomodelkit against its peers, on loopback, under latency.

Quick subset (< 5 min, what ``nox -s bench`` runs)::

    python -m benchmarks.harness --quick

Full suite (see benchmarks/README.md for the time it takes)::

    python -m benchmarks.harness

The harness starts SeaweedFS (S3) and fake-gcs-server (GCS) on 127.0.0.1, publishes the
workloads of :mod:`benchmarks.workloads` with aiomodelkit's publisher, and for each network
condition (raw loopback; 20 ms RTT through :class:`aiomodelkit.testing.LatencyProxy`; the
same with a 128 KiB window per connection and an 800 Mbit/s cap) runs every peer in its own
fresh process: one warm-up round, then ``--runs`` rounds in alternation (A B C A B C ...).
Each run starts with an empty cache.

The harness's side (this process):

* :mod:`.cli`: the command line; writes ``benchmarks/results/<name>.{json,md,png}``,
* :mod:`.matrix`: the conditions, which workloads run under each, which peers,
* :mod:`.suite`: one run (a :class:`~.records.Job` → a :class:`~.records.RunRecord`) and
  each condition's steps,
* :mod:`.services`: the servers, the latency proxy's process and the idle bystander,
* :mod:`.peers`: how each peer's process is started and its result read.

The peers' side (a fresh process per run):

* :mod:`.runner`: the Python peers' entry point and clock; :mod:`.clients`: what each does,
* :mod:`.modelkit_peer`: modelkit 0.1.3, in its own virtualenv,
* :mod:`.proxy`: the latency proxy's entry point.

Both sides share :mod:`.records` (the typed job and result records) and :mod:`.measure`
(RSS and CPU of a process); both are stdlib only, so modelkit's virtualenv imports them.
Nothing is imported here, for the same reason.
"""
