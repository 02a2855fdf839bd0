"""Composition root of the scheduling service: builds every part and wires them."""

from __future__ import annotations

from functools import partial

import grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2_grpc

from services.runtime import db
from services.runtime.build_info import BuildInfo
from services.runtime.config import Settings
from services.runtime.info import service_info
from services.runtime.server import ServiceParts
from services.runtime.unit_of_work import repository_scope
from services.scheduling.persistence import ScheduleRepository
from services.scheduling.servicer import SERVICE_NAME, SchedulingServicer


def compose(settings: Settings, build: BuildInfo) -> ServiceParts:
    engine = db.create_engine_for(settings)
    sessions = db.make_session_factory(engine)

    servicer = SchedulingServicer(
        schedules=repository_scope(sessions, ScheduleRepository),
        info=partial(service_info, settings, build, SERVICE_NAME),
    )

    def register(server: grpc.Server) -> None:
        scheduling_service_pb2_grpc.add_SchedulingServiceServicer_to_server(servicer, server)

    return ServiceParts(
        service_name=SERVICE_NAME,
        register=register,
        readiness_checks={"database": partial(db.database_ready, engine)},
        close=engine.dispose,
    )
