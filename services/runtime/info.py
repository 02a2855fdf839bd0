"""The ServiceInfo every service returns from its GetServiceInfo method."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import timestamp_pb2
from manufacturing.common.v1 import service_info_pb2

from services.runtime.build_info import BuildInfo
from services.runtime.config import Settings


def service_info(
    settings: Settings,
    build: BuildInfo,
    service_name: str,
    model_versions: Mapping[str, str] | None = None,
) -> service_info_pb2.ServiceInfo:
    start_time = timestamp_pb2.Timestamp()
    start_time.FromDatetime(build.start_time)
    return service_info_pb2.ServiceInfo(
        service_name=service_name,
        version=build.version,
        git_revision=build.git_revision,
        start_time=start_time,
        color=settings.color,
        environment=settings.environment,
        model_versions=dict(model_versions or {}),
    )
