"""Check results as an operator reads them (one coloured line each) or as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Status(IntEnum):
    OK = 0
    WARN = 1
    FAIL = 2


_COLORS = {Status.OK: "\x1b[32m", Status.WARN: "\x1b[33m", Status.FAIL: "\x1b[31m"}
_RESET = "\x1b[0m"


@dataclass
class Check:
    name: str
    status: Status
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    kind: str  # "daily" | "weekly"
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    @property
    def status(self) -> Status:
        return max((c.status for c in self.checks), default=Status.OK)

    def exit_code(self) -> int:
        """0 all OK, 1 warnings only, 2 at least one failure."""
        return int(self.status)

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "status": self.status.name,
                "checks": [
                    {"name": c.name, "status": c.status.name, "summary": c.summary, **c.data}
                    for c in self.checks
                ],
            },
            indent=2,
            default=str,
        )

    def to_text(self, color: bool) -> str:
        width = max((len(c.name) for c in self.checks), default=10)
        lines = [f"ops check --{self.kind}"]
        for check in self.checks:
            tag = f"{check.status.name:<4}"
            line = f"{tag}  {check.name:<{width}}  {check.summary}"
            lines.append(f"{_COLORS[check.status]}{line}{_RESET}" if color else line)
        overall = f"overall: {self.status.name}"
        lines.append(f"{_COLORS[self.status]}{overall}{_RESET}" if color else overall)
        return "\n".join(lines)
