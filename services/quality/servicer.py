"""The QualityService: validate the request, call the domain, build the reply."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from manufacturing.common.v1 import service_info_pb2
from manufacturing.quality.v1 import control_chart_pb2, quality_service_pb2_grpc
from manufacturing.quality.v1 import quality_service_pb2 as pb

from services.quality.domain.control_charts import Series, validate_subgroups, xbar_r_chart
from services.runtime.errors import Violations

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["QualityService"].full_name


def _series_to_proto(series: Series) -> control_chart_pb2.ChartSeries:
    limits = series.limits
    return control_chart_pb2.ChartSeries(
        statistic=series.statistic,
        limits=control_chart_pb2.ControlLimits(
            center_line=limits.center_line,
            upper_control_limit=limits.upper,
            lower_control_limit=limits.lower,
        ),
        points=[
            control_chart_pb2.ChartPoint(
                subgroup_index=index, value=value, out_of_control=not limits.contains(value)
            )
            for index, value in enumerate(series.values)
        ],
    )


class QualityServicer(quality_service_pb2_grpc.QualityServiceServicer):
    def __init__(self, *, info: Callable[[], service_info_pb2.ServiceInfo]) -> None:
        self._info = info

    def GetServiceInfo(
        self, request: pb.GetServiceInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetServiceInfoResponse:
        return pb.GetServiceInfoResponse(info=self._info())

    def ComputeControlChart(
        self, request: pb.ComputeControlChartRequest, context: grpc.ServicerContext
    ) -> pb.ComputeControlChartResponse:
        violations = Violations()
        violations.check(
            request.chart_type == control_chart_pb2.CHART_TYPE_XBAR_R,
            "chart_type",
            "must be CHART_TYPE_XBAR_R (the chart types this version computes)",
        )
        subgroups = [list(subgroup.values) for subgroup in request.subgroups]
        validate_subgroups(subgroups, violations)
        violations.raise_if_any()
        chart = xbar_r_chart(subgroups)
        return pb.ComputeControlChartResponse(
            chart=control_chart_pb2.ControlChart(
                chart_type=request.chart_type,
                subgroup_size=chart.subgroup_size,
                series=[_series_to_proto(chart.xbar), _series_to_proto(chart.range)],
            )
        )
