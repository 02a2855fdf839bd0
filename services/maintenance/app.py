"""Composition root of the maintenance service: builds every part and wires them."""

from __future__ import annotations

from functools import partial

import grpc
from manufacturing.maintenance.v1 import maintenance_service_pb2_grpc

from services.maintenance.persistence import ReadingRepository
from services.maintenance.servicer import SERVICE_NAME, MaintenanceServicer
from services.runtime import db
from services.runtime.build_info import BuildInfo
from services.runtime.config import Settings
from services.runtime.info import service_info
from services.runtime.server import ServiceParts
from services.runtime.unit_of_work import repository_scope


def compose(settings: Settings, build: BuildInfo) -> ServiceParts:
    engine = db.create_engine_for(settings)
    sessions = db.make_session_factory(engine)

    servicer = MaintenanceServicer(
        readings=repository_scope(sessions, ReadingRepository),
        info=partial(service_info, settings, build, SERVICE_NAME),
    )

    def register(server: grpc.Server) -> None:
        maintenance_service_pb2_grpc.add_MaintenanceServiceServicer_to_server(servicer, server)

    return ServiceParts(
        service_name=SERVICE_NAME,
        register=register,
        readiness_checks={"database": partial(db.database_ready, engine)},
        close=engine.dispose,
    )
