"""What every ``mfg`` command shares: where the suite is, credentials, output format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import click

from manufacturing_sdk.base import SyncClient

Client = TypeVar("Client", bound=SyncClient)


@dataclass(frozen=True)
class Context:
    target: str
    token: str | None
    api_key: str | None
    timeout_s: float
    json_output: bool

    def client(self, kind: type[Client]) -> Client:
        return kind(self.target, token=self.token, api_key=self.api_key, timeout_s=self.timeout_s)


pass_context = click.make_pass_decorator(Context)
