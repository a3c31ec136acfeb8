"""What N echo connections amounted to, counted the same way by every many-connection client.

``multiconn`` (selectors) and ``asyncecho`` (asyncio) open many connections
in different ways but report the same thing: how many were opened, echoed
back whole or failed (by outcome, with the errno of the first failure of
each kind), the most open at once, the bytes either way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nodes.cli import failure
from nodes.outcomes import Outcome


@dataclass
class Tally:
    connections: int
    opened: int = 0
    completed: int = 0
    open_now: int = 0
    peak_open: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    why: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # outcome -> (errno, detail)

    def connected(self) -> None:
        self.opened += 1
        self.open_now += 1
        self.peak_open = max(self.peak_open, self.open_now)

    def failed(self, outcome: str, errno_name: str | None = None, detail: str | None = None, count: int = 1) -> None:
        self.errors[outcome] += count
        self.why.setdefault(outcome, (errno_name, detail))

    def raised(self, exc: BaseException, count: int = 1) -> None:
        said = failure(exc)
        self.failed(said["outcome"], said["errno"], said["detail"], count)

    def summary(self) -> dict[str, Any]:
        """The JSON keys both clients report: echoed if every connection was, else the commonest failure."""
        if self.completed == self.connections:
            outcome, errno_name, detail = Outcome.ECHOED.value, None, None
        else:
            outcome = self.errors.most_common(1)[0][0]
            errno_name, detail = self.why[outcome]
        return {
            "outcome": outcome, "errno": errno_name, "detail": detail,
            "connections": self.connections, "opened": self.opened, "completed": self.completed,
            "failed": self.connections - self.completed, "peak_open": self.peak_open,
            "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received, "errors": dict(self.errors),
        }
