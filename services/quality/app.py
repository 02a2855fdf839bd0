"""Composition root of the quality service: builds every part and wires them."""

from __future__ import annotations

from functools import partial

import grpc
from manufacturing.quality.v1 import quality_service_pb2_grpc

from services.quality.servicer import SERVICE_NAME, QualityServicer
from services.runtime.build_info import BuildInfo
from services.runtime.config import Settings
from services.runtime.info import service_info
from services.runtime.server import ServiceParts


def compose(settings: Settings, build: BuildInfo) -> ServiceParts:
    servicer = QualityServicer(info=partial(service_info, settings, build, SERVICE_NAME))

    def register(server: grpc.Server) -> None:
        quality_service_pb2_grpc.add_QualityServiceServicer_to_server(servicer, server)

    # Control charts are computed from the request alone: nothing stored, nothing to
    # wait for. Measurement history (and its database check) comes with SPC storage.
    return ServiceParts(service_name=SERVICE_NAME, register=register, readiness_checks={})
