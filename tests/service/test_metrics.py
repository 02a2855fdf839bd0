"""Each service's Prometheus endpoint counts the calls it serves, by status code."""

from __future__ import annotations

import urllib.request

import cv2
import grpc
import numpy as np
import pytest
from manufacturing.maintenance.v1 import (
    alert_pb2,
    maintenance_service_pb2_grpc,
    sensor_reading_pb2,
)
from manufacturing.maintenance.v1 import maintenance_service_pb2 as mpb
from manufacturing.quality.v1 import control_chart_pb2, inspection_pb2
from manufacturing.quality.v1 import quality_service_pb2 as pb
from manufacturing.scheduling.v1 import schedule_pb2, scheduling_service_pb2_grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2 as spb
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import channel_to


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
    models = {dict(labels)["model"] for (name, labels) in samples if name == "model_info"}
    assert "neu-surface" in models


def counter(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_schedules_solved_are_counted_by_status(scheduling):
    problem = schedule_pb2.Problem(
        machines=[schedule_pb2.Machine(id="a")],
        jobs=[
            schedule_pb2.Job(
                id="j",
                operations=[
                    schedule_pb2.Operation(
                        eligible_machines=[schedule_pb2.EligibleMachine(machine_id="a", duration=2)]
                    )
                ],
            )
        ],
    )
    with channel_to(scheduling.port) as channel:
        stub = scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
        stub.Solve(spb.SolveRequest(problem=problem))
    samples = scrape(scheduling.metrics_port)
    assert counter(samples, "scheduling_schedules_solved_total", status="OPTIMAL") == 1


def test_readings_ingested_are_counted_once(maintenance):
    reading = sensor_reading_pb2.SensorReading(machine_id="m", sensor="temp", value=1.0)
    reading.time.FromSeconds(1_767_225_600)
    with channel_to(maintenance.port) as channel:
        stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
        stub.IngestReadings(iter([mpb.IngestReadingsRequest(readings=[reading])]))
        stub.IngestReadings(iter([mpb.IngestReadingsRequest(readings=[reading])]))  # duplicate
    assert counter(scrape(maintenance.metrics_port), "maintenance_readings_ingested_total") == 1


def test_alerts_raised_are_counted_by_severity(maintenance):
    """A reading over a P1 threshold raises one alert; the counter names its severity.
    The next breach, while that alert is open, raises none and counts none."""

    def temperature(step: int, value: float) -> sensor_reading_pb2.SensorReading:
        reading = sensor_reading_pb2.SensorReading(machine_id="press", sensor="temp", value=value)
        reading.time.FromSeconds(1_767_225_600 + step)
        return reading

    with channel_to(maintenance.port) as channel:
        stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
        stub.CreateAlertRule(
            mpb.CreateAlertRuleRequest(
                rule=alert_pb2.AlertRule(
                    machine_id="press",
                    kind=alert_pb2.RULE_KIND_THRESHOLD,
                    severity=alert_pb2.SEVERITY_P1,
                    sensor="temp",
                    upper_limit=80.0,
                )
            )
        )
        within = stub.IngestReadings(
            iter([mpb.IngestReadingsRequest(readings=[temperature(0, 70.0)])])
        )
        assert within.alerts_raised == 0
        assert counter(scrape(maintenance.metrics_port), "maintenance_alerts_raised_total") == 0
        over = [temperature(1, 90.0), temperature(2, 95.0)]
        reply = stub.IngestReadings(iter([mpb.IngestReadingsRequest(readings=over)]))
    assert reply.alerts_raised == 1
    raised = {
        dict(labels)["severity"]: value
        for (name, labels), value in scrape(maintenance.metrics_port).items()
        if name == "maintenance_alerts_raised_total"
    }
    assert raised == {"P1": 1}


def test_inspections_are_counted_by_verdict_and_timed(quality, quality_stub):
    rng = np.random.default_rng(0)
    ok, png = cv2.imencode(
        ".png", np.clip(rng.normal(128, 20, (200, 200)), 0, 255).astype(np.uint8)
    )
    assert ok
    result = quality_stub.Inspect(
        pb.InspectRequest(image=png.tobytes(), model="magnetic-tile")
    ).result
    verdict = inspection_pb2.Verdict.Name(result.verdict).removeprefix("VERDICT_").lower()
    samples = scrape(quality.metrics_port)
    counted = {
        dict(labels)["verdict"]: value
        for (name, labels), value in samples.items()
        if name == "quality_parts_inspected_total"
    }
    assert counted == {verdict: 1}
    assert counter(samples, "model_inference_seconds_count", model="magnetic-tile") == 1
