"""Before any traffic moves: readiness, smoke calls and a parity check on a sample.

All of it goes straight to the new color's own ports, not through the gateway, so no
caller ever sees an answer of a version that has not passed. Where the services require
credentials (``AUTH_ENABLED``), smoke and parity calls carry the ``metadata`` given
(an ``x-api-key`` or ``authorization`` header); health checks need none. Where they
demand a client certificate (mutual TLS, ``TLS_CLIENT_CA_FILE``), every check connects
with the :class:`ClientTls` given.

- readiness: grpc.health.v1 Check for the service's full name says SERVING;
- smoke: GetServiceInfo answers with the expected version and color, and each sample
  call ends without a server-side error;
- parity: each sample call (read-only methods only) gets the same answer, status and
  message, from the live color and the new one, floats compared to 1e-9 relative.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.rollout import contract
from services.rollout.envoy_admin import SERVER_ERROR_CODES

CALL_TIMEOUT_S = 10.0


class CheckFailed(RuntimeError):
    """The new color is not fit for traffic; the message says why."""


# The environment variables naming a ClientTls's files, in its fields' order.
TLS_VARIABLES = ("ROLLOUT_TLS_CA_FILE", "ROLLOUT_TLS_CERT_FILE", "ROLLOUT_TLS_KEY_FILE")


@dataclass(frozen=True)
class ClientTls:
    """Mutual TLS to the services: the CA their certificates are checked against and
    the client certificate presented (PEM file paths). ``server_name``, when set, is the
    name the service's certificate must carry instead of the address dialled: a check
    reaching a color through a local port-forward dials 127.0.0.1, while the color's
    certificate names its Service."""

    ca_file: str
    cert_file: str
    key_file: str
    server_name: str = ""

    def naming(self, server_name: str) -> ClientTls:
        return replace(self, server_name=server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=Path(self.ca_file).read_bytes(),
            private_key=Path(self.key_file).read_bytes(),
            certificate_chain=Path(self.cert_file).read_bytes(),
        )


def service_channel(port: int, tls: ClientTls | None = None) -> grpc.Channel:
    """A channel to a service on this host: mutual TLS with ``tls``, else plaintext."""
    target = f"127.0.0.1:{port}"
    if tls is None:
        return grpc.insecure_channel(target)
    options = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
    return grpc.secure_channel(target, tls.credentials(), options=options)


@dataclass(frozen=True)
class Sample:
    method: str
    request: dict[str, Any]  # proto3 JSON of the request


def _chart(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311  (reproducible test data, not secrets)
    centre, spread = rng.uniform(10, 100), rng.uniform(0.1, 2.0)
    subgroups = [
        {"values": [round(rng.gauss(centre, spread), 4) for _ in range(4)]} for _ in range(8)
    ]
    return {"chartType": "CHART_TYPE_XBAR_R", "subgroups": subgroups}


# Read-only calls whose answers must not change between versions of one contract.
SAMPLES: dict[str, tuple[Sample, ...]] = {
    "scheduling": (Sample("ListSchedules", {"pageSize": 5}),),
    "quality": tuple(Sample("ComputeControlChart", _chart(seed)) for seed in range(6)),
    "maintenance": (Sample("GetLatestReadings", {"machineId": "press-7"}),),
}


def _classes(service: str, method: str) -> tuple[type[Message], type[Message]]:
    descriptor = contract.service_descriptor(service).methods_by_name[method]
    return (
        message_factory.GetMessageClass(descriptor.input_type),
        message_factory.GetMessageClass(descriptor.output_type),
    )


Metadata = Sequence[tuple[str, str]]


def call(
    channel: grpc.Channel,
    service: str,
    method: str,
    request: dict[str, Any],
    metadata: Metadata = (),
) -> tuple[grpc.StatusCode, Message | None]:
    request_class, response_class = _classes(service, method)
    stub = channel.unary_unary(
        f"/{contract.full_name(service)}/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    message = json_format.ParseDict(request, request_class())
    try:
        response = stub(message, timeout=CALL_TIMEOUT_S, metadata=tuple(metadata))
    except grpc.RpcError as error:
        return error.code(), None
    return grpc.StatusCode.OK, response


def wait_serving(
    port: int,
    service: str,
    *,
    startup_timeout: float,
    ready_timeout: float,
    alive: Callable[[], bool],
    tls: ClientTls | None = None,
) -> None:
    """Until grpc.health.v1 says SERVING for the service; fails early if the process ends.

    ``startup_timeout`` bounds the wait for any health answer (the process loading),
    ``ready_timeout`` the wait from that first answer to SERVING.
    """
    request = health_pb2.HealthCheckRequest(service=contract.full_name(service))
    deadline = time.monotonic() + startup_timeout
    answered = False
    last = "no answer"
    with service_channel(port, tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if not alive():
                raise CheckFailed(f"readiness: the process on port {port} exited")
            try:
                status = stub.Check(request, timeout=1.0).status
            except grpc.RpcError as error:
                last = error.code().name
            else:
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
                if not answered:
                    answered = True
                    deadline = time.monotonic() + ready_timeout
            time.sleep(0.1)
    waited = ready_timeout if answered else startup_timeout
    raise CheckFailed(f"readiness: port {port} not SERVING within {waited:.0f} s ({last})")


def smoke(
    port: int,
    service: str,
    version: str,
    color: str,
    metadata: Metadata = (),
    tls: ClientTls | None = None,
) -> int:
    """GetServiceInfo and every sample once on ``port``; returns the number of calls."""
    with service_channel(port, tls) as channel:
        code, info = call(channel, service, "GetServiceInfo", {}, metadata)
        if code is not grpc.StatusCode.OK or info is None:
            raise CheckFailed(f"smoke: GetServiceInfo on port {port} ended {code.name}")
        found = info.info  # type: ignore[attr-defined]
        if (found.version, found.color) != (version, color):
            raise CheckFailed(
                f"smoke: port {port} runs {found.version} ({found.color or 'no color'}), "
                f"expected {version} ({color})"
            )
        for sample in SAMPLES[service]:
            code, _ = call(channel, service, sample.method, sample.request, metadata)
            if code.value[0] in SERVER_ERROR_CODES:
                raise CheckFailed(f"smoke: {sample.method} on port {port} ended {code.name}")
    return 1 + len(SAMPLES[service])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _answer(code: grpc.StatusCode, response: Message | None) -> tuple[str, Any]:
    body = None if response is None else json_format.MessageToDict(response)
    return code.name, body


def parity(
    live_port: int,
    new_port: int,
    service: str,
    samples: Sequence[Sample],
    metadata: Metadata = (),
    live_tls: ClientTls | None = None,
    new_tls: ClientTls | None = None,
) -> int:
    """Every sample answered alike by both ports; returns the number compared."""
    with (
        service_channel(live_port, live_tls) as live,
        service_channel(new_port, new_tls) as new,
    ):
        for sample in samples:
            expected = _answer(*call(live, service, sample.method, sample.request, metadata))
            found = _answer(*call(new, service, sample.method, sample.request, metadata))
            if not _same(expected, found):
                raise CheckFailed(
                    f"parity: {sample.method} differs from the live color: "
                    f"live {str(expected)[:300]} new {str(found)[:300]}"
                )
    return len(samples)
