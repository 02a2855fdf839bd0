"""Browsers through the local suite's real Envoy: CORS preflights from pages on other
origins, and gRPC-Web calls whose outcome such a page can read."""

from __future__ import annotations

import http.client

import pytest

from services.rollout import cors
from tests.gateway import grpc_web

pytestmark = pytest.mark.envoy

GET_SERVICE_INFO = "/manufacturing.quality.v1.QualityService/GetServiceInfo"
SOLVE_STREAM = "/manufacturing.scheduling.v1.SchedulingService/SolveStream"
DEV_SERVER = "http://localhost:5173"


def connect(local_suite) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", local_suite.gateway, timeout=10)


@pytest.mark.parametrize("path", [GET_SERVICE_INFO, SOLVE_STREAM])
def test_preflight_from_a_local_page_is_answered_with_the_grpc_web_headers(local_suite, path):
    reply = grpc_web.preflight(connect(local_suite), path, DEV_SERVER)
    assert reply.status == 200, reply
    assert reply.headers["access-control-allow-origin"] == DEV_SERVER
    assert "post" in reply.allowed("access-control-allow-methods")
    assert set(grpc_web.REQUESTED_HEADERS) <= reply.allowed("access-control-allow-headers")
    assert {"x-api-key", "x-request-id"} <= reply.allowed("access-control-allow-headers")


@pytest.mark.parametrize("origin", ["https://pages.example.com", "http://localhost.example.com"])
def test_preflight_from_another_origin_gets_no_permission(local_suite, origin):
    reply = grpc_web.preflight(connect(local_suite), GET_SERVICE_INFO, origin)
    # Without access-control-allow-origin a browser refuses the call it asked about.
    assert "access-control-allow-origin" not in reply.headers, reply


def test_a_local_page_reads_the_outcome_of_its_grpc_web_call(local_suite):
    reply = grpc_web.call(connect(local_suite), GET_SERVICE_INFO, b"", DEV_SERVER)
    assert reply.status == 200, reply
    assert reply.headers["content-type"].startswith("application/grpc-web")
    assert reply.grpc_status() == "0"
    assert reply.headers["access-control-allow-origin"] == DEV_SERVER
    assert set(cors.EXPOSE_HEADERS) <= reply.allowed("access-control-expose-headers")
    # A page on another origin gets the reply without permission to read it.
    foreign = grpc_web.call(
        connect(local_suite), GET_SERVICE_INFO, b"", "https://pages.example.com"
    )
    assert foreign.grpc_status() == "0"
    assert "access-control-allow-origin" not in foreign.headers
