"""Measure one batch on the in-process stack: wall time, steps, queue messages, DB round trips.

    .venv/bin/python -m bench.batch_run --rows 500 [--ai offline] [--concurrency 4]

The route files are served over real HTTP with the QStash dev server delivering signed
steps, SecantusDB as the store (or MONGODB_URI), so the figures are those of the real
code path. DB round trips are counted with a pymongo CommandListener in this process,
which is also the app's process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from pymongo import monitoring

from bench.harness import CommandCounter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--conversations", type=int, default=0, help="group rows into this many chatIds")
    args = parser.parse_args()

    counter = CommandCounter()
    monitoring.register(counter)  # before any client exists

    from lib.auth import issue_token
    from lib.models import Role
    from lib.services import get_services, reset_services
    from tests.support.database import DatabaseServer
    from tests.support.live_app import LiveApp

    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    database = DatabaseServer(os.environ.get("MONGODB_URI"), scratch)
    database.start()
    app = LiveApp().start()
    secret = "bench-secret-" + "x" * 32
    os.environ.update({"MONGODB_URI": database.uri, "MONGODB_DB": f"bench_{uuid.uuid4().hex[:8]}",
                       "JWT_SECRET": secret, **app.env(), "LOG_LEVEL": "WARNING"})
    reset_services()
    services = get_services()
    user = services.users.upsert("bench@example.gc.ca", Role.PARTNER)
    app.tokens["partner"] = issue_token(user.id, secret)
    try:
        if args.conversations:
            lines = [f"c{n % args.conversations},Question {n} about passports and EI?" for n in range(args.rows)]
            content = ("chatId,QUESTION\n" + "\n".join(lines) + "\n").encode()
        else:
            content = ("QUESTION\n" + "\n".join(f"Question {n} about passports?" for n in range(args.rows)) + "\n").encode()
        before = counter.total()
        started = time.perf_counter()
        response = app.upload("partner", content, concurrency=args.concurrency)
        response.raise_for_status()
        created = time.perf_counter()
        batch_id = response.json()["batchId"]
        at_create = counter.total()
        final = app.wait_final("partner", batch_id, timeout=3600)
        finished = time.perf_counter()
        during = counter.total() - at_create
        stats = app.qstash.stats()
        print(f"rows                 {args.rows}")
        print(f"status               {final['status']}")
        print(f"create (to 202)      {created - started:.2f} s")
        print(f"wall time            {finished - started:.2f} s")
        print(f"step messages        {stats['published']}  (deliveries {stats['deliveryAttempts']})")
        print(f"DB round trips/row   {during / args.rows:.2f}  (create: {(at_create - before) / args.rows:.3f}/row;"
              f" status polls included)")
        print("commands             " + ", ".join(f"{k}={v}" for k, v in counter.counts.most_common(8)))
    finally:
        app.stop()
        database.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
