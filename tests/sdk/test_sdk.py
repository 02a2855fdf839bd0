"""The Python SDK against real servers: typed replies and errors, retries only where safe."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb
from manufacturing_sdk import (
    AsyncSchedulingClient,
    InvalidArgumentError,
    NotFoundError,
    SchedulingClient,
    UnavailableError,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEDULING = "manufacturing.scheduling.v1.SchedulingService"


def test_clients_are_fresh():
    completed = subprocess.run(
        [sys.executable, "scripts/gen_sdk.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr


def test_sync_client_returns_typed_replies_and_raises_typed_errors(scheduling):
    with SchedulingClient(f"127.0.0.1:{scheduling.port}") as client:
        info = client.get_service_info(pb.GetServiceInfoRequest()).info
        assert info.service_name == SCHEDULING
        with pytest.raises(NotFoundError) as missing:
            client.get_schedule(pb.GetScheduleRequest(id="nope"))
        assert missing.value.request_id
        with pytest.raises(InvalidArgumentError) as invalid:
            client.list_schedules(pb.ListSchedulesRequest(page_size=-1))
    assert "page_size" in invalid.value.field_violations


def test_async_client(scheduling):
    async def run() -> tuple[str, dict[str, str]]:
        async with AsyncSchedulingClient(f"127.0.0.1:{scheduling.port}") as client:
            info = (await client.get_service_info(pb.GetServiceInfoRequest())).info
            try:
                await client.solve(pb.SolveRequest())
            except InvalidArgumentError as error:
                return info.service_name, error.field_violations
        raise AssertionError("an empty problem was accepted")

    name, violations = asyncio.run(run())
    assert name == SCHEDULING
    assert "problem" in violations


class Flaky:
    """Answers UNAVAILABLE to the first call of each method, then serves."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.metadata: list[dict[str, str]] = []

    def _answer(self, method: str, context: grpc.ServicerContext) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
        if self.calls[method] == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")

    def get_schedule(
        self, request: pb.GetScheduleRequest, context: grpc.ServicerContext
    ) -> pb.GetScheduleResponse:
        self._answer("GetSchedule", context)
        return pb.GetScheduleResponse()

    def solve(self, request: pb.SolveRequest, context: grpc.ServicerContext) -> pb.SolveResponse:
        self._answer("Solve", context)
        return pb.SolveResponse()


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, int]]:
    backend = Flaky()
    handler = grpc.method_handlers_generic_handler(
        SCHEDULING,
        {
            "GetSchedule": grpc.unary_unary_rpc_method_handler(
                backend.get_schedule,
                pb.GetScheduleRequest.FromString,
                pb.GetScheduleResponse.SerializeToString,
            ),
            "Solve": grpc.unary_unary_rpc_method_handler(
                backend.solve, pb.SolveRequest.FromString, pb.SolveResponse.SerializeToString
            ),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(4), options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield backend, port
    server.stop(0)


def test_idempotent_call_is_retried_after_unavailable(flaky):
    backend, port = flaky
    with SchedulingClient(f"127.0.0.1:{port}", token="t0k3n") as client:
        client.get_schedule(pb.GetScheduleRequest(id="x"))
    assert backend.calls["GetSchedule"] == 2
    assert all(m.get("authorization") == "Bearer t0k3n" for m in backend.metadata)


def test_call_with_side_effects_is_not_retried(flaky):
    backend, port = flaky
    with (
        SchedulingClient(f"127.0.0.1:{port}", api_key="mk_1") as client,
        pytest.raises(UnavailableError),
    ):
        client.solve(pb.SolveRequest())
    assert backend.calls["Solve"] == 1
    assert backend.metadata[0].get("x-api-key") == "mk_1"
