"""Each service's Prometheus endpoint counts the calls it serves, by status code."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from manufacturing.quality.v1 import control_chart_pb2
from manufacturing.quality.v1 import quality_service_pb2 as pb
from prometheus_client.parser import text_string_to_metric_families


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def handled(samples, method: str, code: str) -> float:
    labels = (
        ("grpc_code", code),
        ("grpc_method", method),
        ("grpc_service", "manufacturing.quality.v1.QualityService"),
        ("grpc_type", "unary"),
    )
    return samples.get(("grpc_server_handled_total", labels), 0.0)


def test_calls_are_counted_with_their_status_code(quality, quality_stub):
    good = pb.ComputeControlChartRequest(
        chart_type=control_chart_pb2.CHART_TYPE_XBAR_R,
        subgroups=[
            control_chart_pb2.Subgroup(values=[1, 2]),
            control_chart_pb2.Subgroup(values=[2, 4]),
        ],
    )
    quality_stub.ComputeControlChart(good)
    quality_stub.ComputeControlChart(good)
    with pytest.raises(grpc.RpcError):
        quality_stub.ComputeControlChart(pb.ComputeControlChartRequest())

    samples = scrape(quality.metrics_port)
    assert handled(samples, "ComputeControlChart", "OK") == 2
    assert handled(samples, "ComputeControlChart", "INVALID_ARGUMENT") == 1
    count_key = (
        "grpc_server_handling_seconds_count",
        (
            ("grpc_method", "ComputeControlChart"),
            ("grpc_service", "manufacturing.quality.v1.QualityService"),
            ("grpc_type", "unary"),
        ),
    )
    assert samples[count_key] == 3
    build = [labels for (name, labels) in samples if name == "service_build_info"]
    assert dict(build[0])["version"] == "9.8.7"
