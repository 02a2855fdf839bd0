"""QualityService RPCs on a real in-process server."""

from __future__ import annotations

import math

import grpc
import pytest
from manufacturing.quality.v1 import control_chart_pb2
from manufacturing.quality.v1 import quality_service_pb2 as pb

from tests.errors_support import field_violations


def request(*subgroups: list[float]) -> pb.ComputeControlChartRequest:
    return pb.ComputeControlChartRequest(
        chart_type=control_chart_pb2.CHART_TYPE_XBAR_R,
        subgroups=[control_chart_pb2.Subgroup(values=values) for values in subgroups],
    )


def test_xbar_r_limits(quality_stub):
    # Means 2, 3, 4 (grand mean 3); ranges 2, 2, 2 (mean range 2); n = 3: A2 = 1.0231,
    # D3 = 0, D4 = 2.5736 (3 / (1.693 sqrt 3), 1 + 3 * 0.888 / 1.693).
    chart = quality_stub.ComputeControlChart(request([1, 2, 3], [2, 3, 4], [3, 4, 5])).chart
    assert chart.subgroup_size == 3
    xbar, ranges = chart.series
    assert xbar.statistic == "xbar"
    assert xbar.limits.center_line == pytest.approx(3.0)
    assert xbar.limits.upper_control_limit == pytest.approx(3 + 2 * 1.0231, abs=1e-3)
    assert xbar.limits.lower_control_limit == pytest.approx(3 - 2 * 1.0231, abs=1e-3)
    assert [p.value for p in xbar.points] == pytest.approx([2, 3, 4])
    assert ranges.limits.center_line == pytest.approx(2.0)
    assert ranges.limits.upper_control_limit == pytest.approx(2 * 2.5736, abs=1e-3)
    assert ranges.limits.lower_control_limit == 0
    assert not any(p.out_of_control for p in (*xbar.points, *ranges.points))


def test_point_outside_limits_is_flagged(quality_stub):
    steady = [[10.0, 10.2, 9.8, 10.1]] * 20
    chart = quality_stub.ComputeControlChart(request(*steady, [13.0, 13.1, 12.9, 13.0])).chart
    flagged = [p.subgroup_index for p in chart.series[0].points if p.out_of_control]
    assert flagged == [20]


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (pb.ComputeControlChartRequest(subgroups=request([1, 2], [2, 3]).subgroups), "chart_type"),
        (request([1, 2]), "subgroups"),
        (request([1, 2], [1, 2, 3]), "subgroups[1].values"),
        (request([1], [2]), "subgroups[0].values"),
        (request([1, 2], [1, math.nan]), "subgroups[1].values"),
        (request([1, 2], [1, math.inf]), "subgroups[1].values"),
        (request([1, 2], list(range(26))), "subgroups[1].values"),
    ],
)
def test_bad_subgroups_name_the_field(quality_stub, message, field):
    with pytest.raises(grpc.RpcError) as caught:
        quality_stub.ComputeControlChart(message)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


def test_service_info(quality_stub):
    info = quality_stub.GetServiceInfo(pb.GetServiceInfoRequest()).info
    assert info.service_name == "manufacturing.quality.v1.QualityService"
    assert info.version == "9.8.7"
