"""Process faults at scheduled moments: SIGKILL the app server, stop the database for a while.

One fault at a time, each only while some batch is running (a fault on an idle stack
tests nothing), and the next one only once the stack has recovered from the last (a
row has finished since), so that each recovery time is measured on its own. Whatever
happens, a stopped process is started again before the thread ends.
"""

from __future__ import annotations

import logging
import threading
import time

from bench.campaign.monitor import Monitor
from bench.campaign.plan import ProcessFault
from devstack.stack import Stack

log = logging.getLogger("bench.faults")

WAIT_FOR_ACTIVE_SECONDS = 30.0
WAIT_FOR_RECOVERY_SECONDS = 60.0


class ProcessChaos:
    def __init__(self, stack: Stack, monitor: Monitor, faults: list[ProcessFault], t0: float, stop: threading.Event):
        self.stack = stack
        self.monitor = monitor
        self.faults = faults
        self.t0 = t0
        self.stop = stop
        self.injected: dict[str, int] = {"app-kill": 0, "db-stop": 0}
        self.skipped: list[str] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="campaign-chaos", daemon=True)

    def start(self) -> ProcessChaos:
        self._thread.start()
        return self

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        for n, fault in enumerate(self.faults):
            if self.stop.wait(max(0.0, self.t0 + fault.at - time.monotonic())):
                self.skipped += [f"{f.kind} at {f.at:.0f}s: the batches were over" for f in self.faults[n:]]
                return
            if not self._wait(lambda: self.monitor.active_count() > 0, WAIT_FOR_ACTIVE_SECONDS):
                self.skipped.append(f"{fault.kind} at {fault.at:.0f}s: no batch was running")
                continue
            try:
                self._inject(fault)
            except Exception as exc:  # a stack that cannot come back ends the campaign's faults
                self.errors.append(f"{fault.kind} at {fault.at:.0f}s: {exc}")
                log.exception("process fault %s failed", fault.kind)
                return
            last = self.monitor.events[-1]
            self._wait(lambda: last.progressed is not None or self.monitor.active_count() == 0,
                       WAIT_FOR_RECOVERY_SECONDS)

    def _inject(self, fault: ProcessFault) -> None:
        event = self.monitor.fault_started(fault.kind)
        self.injected[fault.kind] += 1
        if fault.kind == "app-kill":
            log.info("t=%5.1fs SIGKILL the app server, down %.1f s", self._now(), fault.down_seconds)
            self.stack.kill_app()
            time.sleep(fault.down_seconds)
            _twice(self.stack.start_app)
        else:
            log.info("t=%5.1fs stop the database, down %.1f s", self._now(), fault.down_seconds)
            self.stack.stop_db()  # waits until the process has exited and released its files
            time.sleep(fault.down_seconds)
            _twice(self.stack.start_db)
        self.monitor.fault_ended(event)

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _wait(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline or self.stop.wait(0.2):
                return False
        return True


def _twice(start) -> None:
    """Start a process; if it does not come up, try once more (a port may linger briefly)."""
    try:
        start()
    except RuntimeError:
        time.sleep(1.0)
        start()
