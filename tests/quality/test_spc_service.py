"""SPC RPCs on a real in-process server: textbook figures end to end, and bad input.

Expected figures: D. C. Montgomery, Introduction to Statistical Quality Control, 6th ed.
(Wiley, 2009); see tests/quality/test_spc_domain.py for each example's data and notes.
"""

from __future__ import annotations

import math
import threading
import time

import grpc
import pytest
from manufacturing.quality.v1 import control_chart_pb2 as cc
from manufacturing.quality.v1 import quality_service_pb2 as pb

from tests.errors_support import field_violations
from tests.quality.test_spc_domain import BOARDS, JUICE, PISTON_RINGS, SHIFT, printed


def variables(*subgroups: list[float]) -> list[cc.Subgroup]:
    return [cc.Subgroup(values=s) for s in subgroups]


def test_xbar_s_piston_rings_over_grpc(shared_quality_stub):
    # Example 6.3: S chart CL 0.0094, UCL 0.0196; X-bar UCL 74.014, LCL 73.988.
    chart = shared_quality_stub.ComputeControlChart(
        pb.ComputeControlChartRequest(
            chart_type=cc.CHART_TYPE_XBAR_S,
            subgroups=variables(*PISTON_RINGS),
            rules=cc.RULE_SET_WESTERN_ELECTRIC,
        )
    ).chart
    xbar, s = chart.series
    assert (xbar.statistic, s.statistic) == ("xbar", "stdev")
    assert printed(xbar.limits.upper_control_limit, 74.014, 3)
    assert printed(xbar.limits.lower_control_limit, 73.988, 3)
    assert printed(s.limits.center_line, 0.0094, 4)
    assert printed(s.limits.upper_control_limit, 0.0196, 4)
    assert chart.subgroup_size == 5
    assert list(chart.violations) == []  # the rings are in control (Example 6.1)


def test_p_chart_phase_one_with_assignable_causes_example_7_1(shared_quality_stub):
    chart = shared_quality_stub.ComputeControlChart(
        pb.ComputeControlChartRequest(
            chart_type=cc.CHART_TYPE_P,
            subgroups=[cc.Subgroup(count=c, size=50) for c in JUICE],
            excluded_subgroups=[14, 22],
        )
    ).chart
    (series,) = chart.series
    assert list(chart.excluded_subgroups) == [14, 22]
    assert printed(series.limits.center_line, 0.2150, 4)
    assert printed(series.limits.upper_control_limit, 0.3893, 4)
    assert printed(series.limits.lower_control_limit, 0.0407, 4)
    # Excluded points stay plotted; sample 21 (20 / 50 = 0.40) lies above the revised UCL.
    assert [p.subgroup_index for p in series.points if p.out_of_control] == [14, 20, 22]


def test_c_chart_auto_exclusion_example_7_3(shared_quality_stub):
    chart = shared_quality_stub.ComputeControlChart(
        pb.ComputeControlChartRequest(
            chart_type=cc.CHART_TYPE_C,
            subgroups=[cc.Subgroup(count=c) for c in BOARDS],
            auto_exclude=True,
        )
    ).chart
    assert list(chart.excluded_subgroups) == [5, 19]
    assert printed(chart.series[0].limits.center_line, 19.67, 2)
    assert printed(chart.series[0].limits.upper_control_limit, 32.97, 2)


def test_cusum_phase_two_example_9_1(shared_quality_stub):
    chart = shared_quality_stub.ComputeControlChart(
        pb.ComputeControlChartRequest(
            chart_type=cc.CHART_TYPE_CUSUM,
            subgroups=variables(*[[x] for x in SHIFT]),
            frozen_limits=cc.FrozenLimits(center=10, sigma=1),
            cusum_k=0.5,
            cusum_h=5,
        )
    ).chart
    upper = chart.series[0]
    assert printed(upper.points[28].value, 5.28, 2)
    assert [p.subgroup_index for p in upper.points if p.out_of_control] == [28, 29]


def test_ewma_varying_limits_example_9_2(shared_quality_stub):
    chart = shared_quality_stub.ComputeControlChart(
        pb.ComputeControlChartRequest(
            chart_type=cc.CHART_TYPE_EWMA,
            subgroups=variables(*[[x] for x in SHIFT]),
            frozen_limits=cc.FrozenLimits(center=10, sigma=1),
            ewma_lambda=0.1,
            ewma_width=2.7,
        )
    ).chart
    points = chart.series[0].points
    assert printed(points[0].upper_control_limit, 10.27, 2)
    assert printed(points[1].upper_control_limit, 10.36, 2)
    assert printed(points[29].lower_control_limit, 9.38, 2)


def test_nelson_rules_name_the_points(shared_quality_stub):
    values = [10.0, 10.2, 9.9, 10.1, 9.8, 10.0, 10.1, 9.9, 10.2, 9.8] * 3
    values += [10.3 + 0.01 * i for i in range(9)]  # 9 above the centre line
    chart = shared_quality_stub.ComputeControlChart(
        pb.ComputeControlChartRequest(
            chart_type=cc.CHART_TYPE_I_MR,
            subgroups=variables(*[[v] for v in values]),
            frozen_limits=cc.FrozenLimits(center=10.0, sigma=0.2),
            rules=cc.RULE_SET_NELSON,
        )
    ).chart
    nelson_2 = [v for v in chart.violations if v.rule == "nelson_2"]
    assert nelson_2 and set(range(30, 39)) <= set(nelson_2[0].points)
    assert nelson_2[0].statistic == "individual"


def test_capability_over_grpc(shared_quality_stub):
    result = shared_quality_stub.ComputeCapability(
        pb.ComputeCapabilityRequest(
            subgroups=variables(*PISTON_RINGS), lower_spec_limit=73.95, upper_spec_limit=74.05
        )
    ).capability
    assert printed(result.sigma_within, 0.0099, 4)
    assert result.cp.lower < result.cp.estimate < result.cp.upper
    assert result.ppk.estimate <= result.pp.estimate
    assert result.count == 125 and result.normal


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (
            pb.ComputeCapabilityRequest(
                subgroups=variables([1, 2], [2, 3]), lower_spec_limit=5, upper_spec_limit=5
            ),
            "upper_spec_limit",
        ),
        (
            pb.ComputeCapabilityRequest(
                subgroups=variables([1, 2], [2, math.nan]), lower_spec_limit=0, upper_spec_limit=5
            ),
            "subgroups[1].values",
        ),
        (
            pb.ComputeCapabilityRequest(
                subgroups=variables([1, 2], []), lower_spec_limit=0, upper_spec_limit=5
            ),
            "subgroups[1].values",
        ),
    ],
)
def test_bad_capability_requests(shared_quality_stub, message, field):
    with pytest.raises(grpc.RpcError) as caught:
        shared_quality_stub.ComputeCapability(message)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (
            pb.ComputeControlChartRequest(
                chart_type=cc.CHART_TYPE_P,
                subgroups=[cc.Subgroup(count=60, size=50), cc.Subgroup(count=1, size=50)],
            ),
            "subgroups[0].count",
        ),
        (
            pb.ComputeControlChartRequest(
                chart_type=cc.CHART_TYPE_U,
                subgroups=[cc.Subgroup(count=3, size=0), cc.Subgroup(count=1, size=5)],
            ),
            "subgroups[0].size",
        ),
        (
            pb.ComputeControlChartRequest(
                chart_type=cc.CHART_TYPE_C,
                subgroups=[cc.Subgroup(count=math.inf), cc.Subgroup(count=1)],
            ),
            "subgroups[0].count",
        ),
        (
            pb.ComputeControlChartRequest(
                chart_type=cc.CHART_TYPE_EWMA, subgroups=variables([1], [2]), ewma_lambda=1.5
            ),
            "ewma_lambda",
        ),
        (
            pb.ComputeControlChartRequest(
                chart_type=cc.CHART_TYPE_XBAR_R,
                subgroups=variables([1, 2], [2, 3]),
                excluded_subgroups=[7],
            ),
            "excluded_subgroups[0]",
        ),
        (
            pb.ComputeControlChartRequest(
                chart_type=cc.CHART_TYPE_I_MR,
                subgroups=variables([1], [2]),
                frozen_limits=cc.FrozenLimits(center=1, sigma=0),
            ),
            "frozen_limits.sigma",
        ),
    ],
)
def test_bad_chart_requests(shared_quality_stub, message, field):
    with pytest.raises(grpc.RpcError) as caught:
        shared_quality_stub.ComputeControlChart(message)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


def test_recorded_measurements_are_charted(quality_stub):
    name = "line-3/piston-ring/inside-diameter"
    first = quality_stub.RecordMeasurements(
        pb.RecordMeasurementsRequest(characteristic=name, subgroups=variables(*PISTON_RINGS[:10]))
    )
    assert (first.recorded, first.total) == (10, 10)
    second = quality_stub.RecordMeasurements(
        pb.RecordMeasurementsRequest(characteristic=name, subgroups=variables(*PISTON_RINGS[10:]))
    )
    assert (second.recorded, second.total) == (15, 25)
    chart = quality_stub.ComputeControlChart(
        pb.ComputeControlChartRequest(chart_type=cc.CHART_TYPE_XBAR_R, characteristic=name)
    ).chart
    assert len(chart.series[0].points) == 25
    assert printed(chart.series[0].limits.center_line, 74.001, 3)  # Example 6.1
    assert printed(chart.series[1].limits.upper_control_limit, 0.049, 3)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (
            pb.RecordMeasurementsRequest(characteristic="", subgroups=variables([1.0])),
            "characteristic",
        ),
        (
            pb.RecordMeasurementsRequest(characteristic="a b", subgroups=variables([1.0])),
            "characteristic",
        ),
        (pb.RecordMeasurementsRequest(characteristic="x"), "subgroups"),
        (
            pb.RecordMeasurementsRequest(characteristic="x", subgroups=variables([])),
            "subgroups[0].values",
        ),
        (
            pb.RecordMeasurementsRequest(
                characteristic="x", subgroups=variables([1.0], [math.nan])
            ),
            "subgroups[1].values",
        ),
        (
            pb.RecordMeasurementsRequest(characteristic="x", subgroups=variables([-math.inf])),
            "subgroups[0].values",
        ),
    ],
)
def test_bad_measurements_are_refused(shared_quality_stub, message, field):
    with pytest.raises(grpc.RpcError) as caught:
        shared_quality_stub.RecordMeasurements(message)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


def test_watch_streams_new_violations_as_measurements_arrive(quality_stub):
    name = "line-1/shaft/diameter"
    steady = [[10.0 + 0.1 * ((i * 7) % 5 - 2)] for i in range(20)]
    quality_stub.RecordMeasurements(
        pb.RecordMeasurementsRequest(characteristic=name, subgroups=variables(*steady))
    )
    watch = quality_stub.WatchViolations(
        pb.WatchViolationsRequest(
            characteristic=name,
            chart_type=cc.CHART_TYPE_I_MR,
            rules=cc.RULE_SET_WESTERN_ELECTRIC,
            frozen_limits=cc.FrozenLimits(center=10.0, sigma=0.1),
        ),
        timeout=20,
    )
    received = []
    ended: list[grpc.StatusCode] = []
    first = threading.Event()

    def read() -> None:
        try:
            for reply in watch:
                received.append(reply)
                first.set()
        except grpc.RpcError as error:  # our own cancel() ends the stream
            ended.append(error.code())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)  # the stream is open before the new subgroups arrive
    quality_stub.RecordMeasurements(
        pb.RecordMeasurementsRequest(
            characteristic=name, subgroups=variables([10.0], [10.5], [10.0])
        )
    )
    assert first.wait(10)
    watch.cancel()
    reader.join(5)
    assert ended == [grpc.StatusCode.CANCELLED]
    rules = {(r.violation.rule, r.sequence) for r in received}
    assert ("we_1", 22) in rules  # 10.5 is 5 sigma above the frozen centre
    assert all(r.sequence > 20 for r in received)  # only violations the new data made


def test_watch_refuses_attribute_charts(shared_quality_stub):
    with pytest.raises(grpc.RpcError) as caught:
        list(
            shared_quality_stub.WatchViolations(
                pb.WatchViolationsRequest(characteristic="x", chart_type=cc.CHART_TYPE_P),
                timeout=5,
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "chart_type" in field_violations(caught.value)
