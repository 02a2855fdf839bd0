"""Scheduling asks a maintenance service that only speaks TLS (as behind the production
gateway): with the CA configured the call is served, over plaintext it is not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from manufacturing.scheduling.v1 import schedule_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from services.runtime import devcerts
from tests.harness import serve, settings_for
from tests.scheduling.test_maintenance_awareness import scheduling_asking
from tests.scheduling.test_rpcs import op, seconds

PROBLEM = schedule_pb2.Problem(
    machines=[schedule_pb2.Machine(id="lathe")],
    jobs=[schedule_pb2.Job(id="j1", operations=[op(("lathe", 20))])],
)


@pytest.fixture(scope="module")
def tls_maintenance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    folder = tmp_path_factory.mktemp("maintenance-tls")
    devcerts.create(folder / "certs", hosts=("localhost",))
    settings = settings_for(
        "maintenance",
        folder / "m",
        TLS_ENABLED="true",
        TLS_CERT_FILE=str(folder / "certs" / "server.pem"),
        TLS_KEY_FILE=str(folder / "certs" / "server-key.pem"),
        MFG_SERVER__HEALTH_PORT="0",
    )
    with serve(settings) as maintenance:
        yield folder, maintenance.port


def solve_warnings(folder: Path, port: int, **environ: str) -> list[str]:
    with scheduling_asking(folder / "s", f"localhost:{port}", **environ) as stub:
        reply = stub.Solve(
            pb.SolveRequest(
                problem=PROBLEM, time_limit=seconds(5), maintenance=pb.MaintenanceAwareness()
            )
        )
    return list(reply.warnings)


def test_with_the_ca_configured_maintenance_answers_over_tls(tls_maintenance):
    folder, port = tls_maintenance
    ca = str(folder / "certs" / "ca.pem")
    assert solve_warnings(folder, port, MAINTENANCE_TLS_CA_FILE=ca) == []


def test_a_plaintext_channel_to_a_tls_listener_is_solved_without_maintenance(tls_maintenance):
    folder, port = tls_maintenance
    (warning,) = solve_warnings(folder, port)
    assert "maintenance" in warning.lower()
