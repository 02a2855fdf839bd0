"""Composition root of the maintenance service: builds every part and wires them."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import grpc
from manufacturing.maintenance.v1 import maintenance_service_pb2_grpc
from prometheus_client import Counter

from services.maintenance.alert_stream import AlertStream, MemoryAlertStream, RedisAlertStream
from services.maintenance.alerting import AlertCenter
from services.maintenance.persistence import AlertRepository, ReadingRepository
from services.maintenance.predictions import RemainingLife
from services.maintenance.registry import ModelRegistry
from services.maintenance.servicer import SERVICE_NAME, MaintenanceServicer
from services.runtime import db
from services.runtime.build_info import BuildInfo
from services.runtime.config import Settings
from services.runtime.info import service_info
from services.runtime.server import ServiceParts
from services.runtime.unit_of_work import repository_scope


def alert_stream_key(settings: Settings) -> str:
    """Replicas that share a database (and so its alerts) share the stream key."""
    return f"{settings.service}:{settings.database_schema}:alerts"


def alert_stream_for(settings: Settings) -> AlertStream:
    """Redis Streams shared by every replica on the same database, else in-process."""
    if settings.redis.url:
        return RedisAlertStream(settings.redis.url, alert_stream_key(settings))
    return MemoryAlertStream()


def compose(settings: Settings, build: BuildInfo) -> ServiceParts:
    models = ModelRegistry.load(settings.models_dir)
    engine = db.create_engine_for(settings)
    sessions = db.make_session_factory(engine)
    stream = alert_stream_for(settings)

    def clock() -> datetime:
        return datetime.now(UTC)

    readings = repository_scope(sessions, ReadingRepository)
    alert_store = repository_scope(sessions, AlertRepository)
    ingested = Counter("maintenance_readings_ingested", "Readings newly stored.", registry=None)
    raised = Counter(
        "maintenance_alerts_raised", "Alerts raised, by severity.", ["severity"], registry=None
    )
    servicer = MaintenanceServicer(
        ingested=ingested,
        readings=readings,
        alert_store=alert_store,
        alerts=AlertCenter(alerts=alert_store, stream=stream, clock=clock, raised=raised),
        remaining_life=RemainingLife(models=models, readings=readings),
        failure=models.failure,
        info=partial(service_info, settings, build, SERVICE_NAME, models.versions()),
        clock=clock,
    )

    def register(server: grpc.Server) -> None:
        maintenance_service_pb2_grpc.add_MaintenanceServiceServicer_to_server(servicer, server)

    def close() -> None:
        stream.close()
        engine.dispose()

    return ServiceParts(
        service_name=SERVICE_NAME,
        register=register,
        readiness_checks={
            "database": partial(db.database_ready, engine),
            "alerts": stream.ping,
            "models": models.all_serving,
        },
        close=close,
        collectors=(ingested, raised),
        model_versions=models.versions,
    )
