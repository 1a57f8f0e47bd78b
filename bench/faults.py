"""A seeded, bounded fault campaign against the local stack, with a summary table.

    .venv/bin/python -m bench.faults [--seed N] [--batches 20] [--max-rows 300] [--quick]

Starts its own stack (SecantusDB, the QStash dev server, the app server) on free ports
in a scratch folder, with the AI and search providers pointed at a provider stub in
this process, and runs batches of mixed sizes (with and without `chatId`
conversations, CSV and XLSX) while it injects, on a schedule drawn from the seed:
- provider faults: 20 % 5xx, 10 % 429 with Retry-After, 5 % read timeouts, 2 %
  malformed replies; search outages (windows of 503s);
- queue faults: every message delivered twice, 10 % of deliveries dropped, deliveries
  delayed and reordered by a random jitter;
- process faults: the app server SIGKILLed and restarted; the database stopped for a
  few seconds and restarted;
- user actions: cancels at random moments, uploads while other batches run.
Once every batch is final it checks the engine's invariants from MongoDB (see
`bench/campaign/invariants.py`) and prints the table. Exit status 0 only if they all
hold: 0 rows lost, 0 duplicates, 0 rows started after a cancel, 0 violations, no batch stuck.
The scratch folder (printed at the end) keeps the processes' logs, and after a failure
also the database files (`secantusd-py --storage-path <folder>/db` serves them again).
`--quick` is the short campaign of the default test run (about a minute).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from dataclasses import replace

from bench.campaign.plan import CampaignConfig, quick_config
from bench.campaign.report import format_report
from bench.campaign.runner import run_campaign


def parse_args(argv: list[str] | None) -> CampaignConfig:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batches", type=int, help="how many batches (default 20; quick: 5)")
    parser.add_argument("--max-rows", type=int, help="largest batch (default 300; quick: 40)")
    parser.add_argument("--deadline", type=float, help="seconds for the whole campaign (default 900; quick: 85)")
    parser.add_argument("--quick", action="store_true", help="the short campaign of the default test run")
    args = parser.parse_args(argv)
    config = quick_config(args.seed) if args.quick else CampaignConfig(seed=args.seed)
    if args.batches is not None:
        if args.batches < 1:
            parser.error("--batches must be at least 1")
        config = replace(config, batches=args.batches)
    if args.max_rows is not None:
        if args.max_rows < config.min_rows:
            parser.error(f"--max-rows must be at least {config.min_rows}")
        config = replace(config, max_rows=args.max_rows)
    if args.deadline is not None:
        config = replace(config, deadline_seconds=args.deadline)
    return config


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    report = run_campaign(config)
    print(format_report(report), flush=True)
    if report.ok:
        shutil.rmtree(report.data_dir / "db", ignore_errors=True)  # kept after a failure, to look into
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
