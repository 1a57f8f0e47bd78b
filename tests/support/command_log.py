"""A pymongo listener that keeps every command one client sent, as (command name, collection)."""

from __future__ import annotations

from pymongo import monitoring

WRITES = {"insert", "update", "delete", "findAndModify"}


class CommandLog(monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append((event.command_name, str(event.command.get(event.command_name))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def writes(self) -> list[tuple[str, str]]:
        """The write commands seen (a bulk write is one)."""
        return [c for c in self.seen if c[0] in WRITES]
