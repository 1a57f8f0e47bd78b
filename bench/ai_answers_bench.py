"""Batches sent to a deployed AI Answers, measured against the stand-in (issue 15).

    .venv/bin/python -m bench.ai_answers_bench [--latency-ms 300] [--rows 96] [--shapes A,B,C]
                                               [--concurrency 16] [--framing sse|ndjson]
                                               [--faults] [--fault-rows 300] [--fault-rate 0.3] [--seed 1]

Starts the benchmarks' stack (bench/harness.py: SecantusDB, the route files over HTTP, the
QStash dev server) with `AI_ANSWERS_URL` pointed at the stand-in of
tests/support/ai_answers_standin.py, run in a child process (as bench/stub_process.py
runs the provider stub: in the app's process its threads would compete for the GIL).
The stand-in answers each request after L ms, sending keepalives meanwhile.

Throughput: for each shape (bench/shapes.py) one batch with `pipeline=ai-answers` at the
given concurrency: makespan (create sent -> completedAt), the bound max(longest
conversation x L, rows x L / concurrency) (one request per row), makespan / bound, and
the list-schedule makespan the engine's plan would reach with no overhead.

Faults (`--faults`): a longer batch of independent rows and conversations in which each
row's first request meets, with probability `--fault-rate`, one fault kind drawn from the
seed (dropped streams before and after the result, 429 RATE_LIMITED and
chat_run_in_progress with Retry-After, 503, slow first byte, malformed events, a garbled
result, error events). Then counts: rows lost (not final), rows duplicated (answers the
deployment recorded more than once for a row, interactions stored twice), rows by status.
Exit status 0 when nothing was lost or duplicated.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from bench.harness import RESTART_AFTER_WRITES, BenchStack
from bench.shapes import SHAPES, Shape, csv_bytes, ideal_bound, list_schedule_makespan

FAULT_KINDS = ("drop_before_result", "drop_after_result", "rate_limited", "chat_busy", "server_error",
               "slow_first_byte", "malformed_events", "malformed_result", "short_query", "graph_error")


def _fault(kind: str) -> Any:
    from tests.support.ai_answers_standin import Fault

    return {
        "drop_before_result": Fault.drop_before_result(),
        "drop_after_result": Fault.drop_after_result(),
        "rate_limited": Fault.status(429, "RATE_LIMITED", retry_after=1),
        "chat_busy": Fault.status(429, "chat_run_in_progress", retry_after=1),
        "server_error": Fault.status(503, "could_not_create_chat"),
        "slow_first_byte": Fault.slow_first_byte(0.5),
        "malformed_events": Fault.malformed_events(),
        "malformed_result": Fault.malformed_result(),
        "short_query": Fault.error_event("ShortQueryValidation", "too short"),
        "graph_error": Fault.error_event("GraphError", "the graph failed"),
    }[kind]


def _serve(conn: Connection) -> None:
    from tests.support import ai_answers_standin
    from tests.support.ai_answers_standin import AIAnswersStandIn

    ai_answers_standin._Handler.disable_nagle_algorithm = True
    standin: AIAnswersStandIn | None = None
    injected: Counter[str] = Counter()
    while True:
        command, args = conn.recv()
        if command == "configure":
            if standin is None:  # one server for the whole run: the app keeps connections to it open
                standin = AIAnswersStandIn().start()
            standin.reset()
            standin.framing, standin.latency, standin.keepalive = args["framing"], args["latency"], args["keepalive"]
            injected = Counter()
            rate, rng, seen = args.get("fault_rate", 0.0), random.Random(args.get("seed", 1)), set()

            def rule(call: Any, rate: float = rate, rng: random.Random = rng, seen: set = seen,
                     injected: Counter[str] = injected) -> Any:
                key = call.input.get("userMessageId")
                if key in seen or rate <= 0:
                    return None  # a row's first request only
                seen.add(key)
                if rng.random() >= rate:
                    return None
                kind = rng.choice(FAULT_KINDS)
                injected[kind] += 1
                return _fault(kind)

            standin.rule(rule)
            conn.send({"url": standin.url})
        elif command == "stats":
            assert standin is not None
            conn.send({"requests": len(standin.calls), "maxInFlight": standin.max_in_flight,
                       "persistedMax": max(standin.persisted.values(), default=0),
                       "persistedTwice": sum(1 for n in standin.persisted.values() if n > 1),
                       "outcomes": Counter(c.outcome.split(":")[0] for c in standin.calls), "injected": injected})
        elif command == "stop":
            if standin is not None:
                standin.stop()
            conn.send({"ok": True})
            return


class StandInProcess:
    """The stand-in in a child process, driven over a pipe (one server, reconfigured between batches)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), daemon=True)

    def start(self) -> StandInProcess:
        self._process.start()
        return self

    def configure(self, *, latency: float, framing: str, keepalive: float, fault_rate: float = 0.0,
                  seed: int = 1) -> str:
        self._conn.send(("configure", {"latency": latency, "framing": framing, "keepalive": keepalive,
                                       "fault_rate": fault_rate, "seed": seed}))
        return self._conn.recv()["url"]

    def stats(self) -> dict[str, Any]:
        self._conn.send(("stats", {}))
        return self._conn.recv()

    def stop(self) -> None:
        if self._process.is_alive():
            self._conn.send(("stop", {}))
            self._conn.recv()
            self._process.join(5)


def run_batch(stack: BenchStack, content: bytes, concurrency: int, name: str,
              timeout: float = 1800) -> tuple[str, float, dict[str, Any]]:
    """One batch through the deployment: its id, makespan (create sent -> completedAt) and final document.

    SecantusDB is restarted first once it has taken many writes, as `BenchStack.run` does
    (its table of retryable writes slows every write down as it fills; see bench/harness.py).
    """
    if stack.restart_db and stack._writes() - stack._writes_at_restart > RESTART_AFTER_WRITES:
        stack.restart_database()
    before = stack.counter.snapshot()
    started = time.time()
    response = stack.app.upload("partner", content, batchName=name, pipeline="ai-answers",
                                concurrency=concurrency, aiProvider="offline", searchProvider="offline")
    if response.status_code != 202:
        raise RuntimeError(f"create answered {response.status_code}: {response.text[:300]}")
    batch_id = response.json()["batchId"]
    (doc,) = stack._wait_final([batch_id], timeout)
    after = stack.counter.snapshot()
    calls, millis = after[1] - before[1], after[2] - before[2]
    rows = max(1, doc.get("totalItems") or 1)
    doc["dbPerRow"] = sum(calls.values()) / rows
    doc["dbSlowest"] = [(f"{name} {coll}", calls[(name, coll)] / rows, ms / max(1, calls[(name, coll)]))
                        for (name, coll), ms in millis.most_common(3)]
    return batch_id, doc["completedAt"].timestamp() - started, doc


def throughput(stack: BenchStack, standin: StandInProcess, shapes: list[Shape], latency: float,
               concurrency: int, framing: str) -> bool:
    standin.configure(latency=latency, framing=framing, keepalive=min(15.0, max(0.05, latency / 3)))
    print(f"\nThroughput: L = {latency * 1000:.0f} ms per request, concurrency {concurrency}, {framing}")
    print(f"{'shape':<6}{'rows':>6}{'makespan s':>12}{'bound s':>9}{'ratio':>7}{'schedule':>10}{'failed':>8}"
          f"{'upstream':>10}{'in flight':>10}{'asked 2x':>9}")
    ok = True
    for shape in shapes:
        standin.configure(latency=latency, framing=framing, keepalive=min(15.0, max(0.05, latency / 3)))
        _, makespan, doc = run_batch(stack, csv_bytes(shape), concurrency, f"ai-answers {shape.name}")
        stats = standin.stats()
        bound = ideal_bound(shape, latency, concurrency)
        schedule = list_schedule_makespan(shape, latency, concurrency)
        ok &= doc.get("failedItems", 0) == 0 and stats["persistedTwice"] == 0
        print(f"{shape.name:<6}{shape.rows:>6}{makespan:>12.2f}{bound:>9.2f}{makespan / bound:>7.2f}"
              f"{schedule / bound:>10.2f}{doc.get('failedItems', 0):>8}{stats['requests']:>10}"
              f"{stats['maxInFlight']:>10}{stats['persistedTwice']:>9}")
        slowest = ", ".join(f"{what} {per_row:.2f}/row {ms:.1f} ms" for what, per_row, ms in doc["dbSlowest"])
        print(f"{'':<6}database: {doc['dbPerRow']:.1f} round trips a row; most time in {slowest}")
    return ok


def fault_run(stack: BenchStack, standin: StandInProcess, rows: int, rate: float, seed: int, latency: float,
              concurrency: int, framing: str) -> bool:
    from bson import ObjectId

    standin.configure(latency=latency, framing=framing, keepalive=0.05, fault_rate=rate, seed=seed)
    shape = SHAPES["C"](rows)
    batch_id, makespan, doc = run_batch(stack, csv_bytes(shape), concurrency, "ai-answers faults")
    stats = standin.stats()
    assert stack.observer is not None
    db = stack.observer[stack.db_name]
    with stack.counter.uncounted():
        items = list(db.batch_items.find({"batchId": ObjectId(batch_id)},
                                         {"status": 1, "interactionId": 1, "error": 1, "upstreamAttempts": 1}))
        ids = [i["interactionId"] for i in items]
        stored = Counter(d["_id"] for d in db.interactions.find({"_id": {"$in": ids}}, {"_id": 1}))
    statuses = Counter(i["status"] for i in items)
    lost = shape.rows - sum(statuses[s] for s in ("succeeded", "blocked", "failed", "cancelled"))
    succeeded_without_answer = sum(1 for i in items if i["status"] == "succeeded" and not stored[i["interactionId"]])
    duplicated = stats["persistedTwice"] + sum(1 for n in stored.values() if n > 1)
    attempts = Counter(len(i.get("upstreamAttempts") or {}) for i in items)
    errors = Counter((i.get("error") or {}).get("code") for i in items if i["status"] == "failed")
    print(f"\nFault run: {shape.rows} rows ({shape.description}), fault rate {rate:.0%} on first requests, "
          f"seed {seed}, L = {latency * 1000:.0f} ms, concurrency {concurrency}, {framing}")
    print(f"  makespan {makespan:.1f} s, batch {doc['status']}, steps {doc.get('stepSeq')}")
    print(f"  faults injected: {dict(sorted(stats['injected'].items()))}")
    print(f"  rows: {dict(statuses)}; failed by code: {dict(errors)}")
    print(f"  requests {stats['requests']}, by outcome {dict(stats['outcomes'])}; attempts per row {dict(attempts)}")
    print(f"  lost {lost}, duplicated {duplicated}, answered without a stored interaction {succeeded_without_answer}")
    return lost == 0 and duplicated == 0 and succeeded_without_answer == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ai_answers_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=300)
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--shapes", default="A,B,C")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--framing", choices=("sse", "ndjson"), default="sse")
    parser.add_argument("--faults", action="store_true", help="also run the fault batch")
    parser.add_argument("--fault-rows", type=int, default=300)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    latency = args.latency_ms / 1000
    standin = StandInProcess().start()
    url = standin.configure(latency=latency, framing=args.framing, keepalive=0.1)
    stack = BenchStack({"AI_ANSWERS_URL": url, "MAX_BATCH_ROWS": "100000"})
    try:
        stack.start()
        ok = throughput(stack, standin, [SHAPES[s.strip()](args.rows) for s in args.shapes.split(",")], latency,
                        args.concurrency, args.framing)
        if args.faults:
            ok &= fault_run(stack, standin, args.fault_rows, args.fault_rate, args.seed, latency, args.concurrency,
                            args.framing)
    finally:
        stack.stop()
        standin.stop()
    print("\nall targets met" if ok else "\nSOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
