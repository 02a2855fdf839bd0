"""Channels with the suite's defaults: deadlines, retries where safe, credentials.

Retries use gRPC's own retry policy, set in the channel's service config, and apply
only to methods the contract marks NO_SIDE_EFFECTS or IDEMPOTENT, and only on
UNAVAILABLE: a call that changes something is never sent twice by the SDK.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pb2

DEFAULT_TIMEOUT_S = 30.0
RETRY_ATTEMPTS = 4
SAFE_TO_RETRY = (
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
)


@dataclass(frozen=True)
class Tls:
    """TLS to the gateway or a service; with ``certificate``/``private_key``, mutual TLS."""

    root_certificates: Path | None = None
    certificate: Path | None = None
    private_key: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None) -> bytes | None:
            return path.read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.root_certificates),
            private_key=read(self.private_key),
            certificate_chain=read(self.certificate),
        )


def retry_service_config(services: Iterable[descriptor.ServiceDescriptor]) -> str:
    """A gRPC service config retrying safe methods on UNAVAILABLE."""
    names = [
        {"service": service.full_name, "method": method.name}
        for service in services
        for method in service.methods
        if method.GetOptions().idempotency_level in SAFE_TO_RETRY and not method.client_streaming
    ]
    policy = {
        "maxAttempts": RETRY_ATTEMPTS,
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": policy}]})


def channel_options(services: Sequence[descriptor.ServiceDescriptor]) -> list[tuple[str, Any]]:
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", retry_service_config(services)),
        ("grpc.keepalive_time_ms", 60_000),
    ]


Metadata = Callable[[], tuple[tuple[str, str | bytes], ...]]


def credentials_metadata(token: str | Callable[[], str] | None, api_key: str | None) -> Metadata:
    """Metadata to send with every call: a bearer token (fresh per call) or an API key."""

    def metadata() -> tuple[tuple[str, str | bytes], ...]:
        pairs: list[tuple[str, str | bytes]] = []
        if token is not None:
            pairs.append(("authorization", f"Bearer {token() if callable(token) else token}"))
        if api_key is not None:
            pairs.append(("x-api-key", api_key))
        return tuple(pairs)

    return metadata
