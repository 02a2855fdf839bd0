"""Composition root of the scheduling service: builds every part and wires them."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2_grpc
from prometheus_client import Counter
from sqlalchemy import Engine

from services.runtime import db
from services.runtime.build_info import BuildInfo
from services.runtime.config import SchedulingSettings, Settings
from services.runtime.info import service_info
from services.runtime.models import ServedModel, all_serving, load_model
from services.runtime.server import ServiceParts
from services.runtime.unit_of_work import repository_scope
from services.scheduling import duration_artifacts
from services.scheduling.domain import tabu
from services.scheduling.domain.durations import DurationModel
from services.scheduling.maintenance import MaintenanceAdvisor
from services.scheduling.persistence import ScheduleRepository
from services.scheduling.servicer import SERVICE_NAME, SchedulingServicer, SolverSettings

# The name the duration model is reported under (ServiceInfo, model_info).
DURATION_MODEL = "processing_time"


def channel_to_maintenance(settings: SchedulingSettings) -> grpc.Channel:
    """Plaintext, or TLS verified against the configured CA (the production gateway)."""
    address = settings.maintenance_address
    if not settings.maintenance_tls_ca_file:
        return grpc.insecure_channel(address)
    # Read once at start: a missing or unreadable CA file stops the service there.
    ca = Path(settings.maintenance_tls_ca_file).read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.secure_channel(address, credentials)


def compose(settings: Settings, build: BuildInfo) -> ServiceParts:
    tabu.compile_in_background()
    engine = db.create_engine_for(settings)
    sessions = db.make_session_factory(engine)

    models_dir = settings.models_dir or duration_artifacts.DEFAULT_DIRECTORY
    durations = load_model(
        DURATION_MODEL,
        models_dir / duration_artifacts.MANIFEST,
        partial(duration_artifacts.load, models_dir),
    )
    maintenance_channel = None
    maintenance = None
    if settings.scheduling.maintenance_address:
        # Connects lazily: a maintenance service down at start only shows in replies.
        maintenance_channel = channel_to_maintenance(settings.scheduling)
        maintenance = MaintenanceAdvisor(
            maintenance_channel, settings.scheduling.maintenance_timeout_s
        )
    solved = Counter(
        "scheduling_schedules_solved",
        "Schedules produced (Solve, SolveStream, Reschedule), by solve status.",
        ["status"],
        registry=None,
    )
    servicer = SchedulingServicer(
        solved=solved,
        schedules=repository_scope(sessions, ScheduleRepository),
        info=partial(service_info, settings, build, SERVICE_NAME, versions(durations)),
        solver=solver_settings(settings.scheduling),
        durations=durations,
        maintenance=maintenance,
    )

    def register(server: grpc.Server) -> None:
        scheduling_service_pb2_grpc.add_SchedulingServiceServicer_to_server(servicer, server)

    return ServiceParts(
        service_name=SERVICE_NAME,
        register=register,
        readiness_checks={
            "database": partial(db.database_ready, engine),
            "models": partial(all_serving, [durations]),
        },
        close=partial(_close, engine, maintenance_channel),
        collectors=(solved,),
        model_versions=partial(versions, durations),
    )


def versions(durations: ServedModel[tuple[str, DurationModel]]) -> dict[str, str]:
    """The duration model's version while it serves."""
    return {durations.name: durations.loaded[0]} if durations.loaded else {}


def _close(engine: Engine, channel: grpc.Channel | None) -> None:
    engine.dispose()
    if channel is not None:
        channel.close()


def solver_settings(settings: SchedulingSettings) -> SolverSettings:
    """The configured solver; ``solver_workers: 0`` means the CPU count, at most 8."""
    return SolverSettings(
        workers=settings.solver_workers or min(8, os.cpu_count() or 1),
        default_time_limit_s=settings.default_time_limit_s,
        max_operations=settings.max_operations,
    )
