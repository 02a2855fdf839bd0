"""Composition root of the quality service: builds every part and wires them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial

import grpc
from manufacturing.quality.v1 import quality_service_pb2_grpc
from prometheus_client import Counter, Histogram

from services.quality.domain.inspection.inspector import Inspector
from services.quality.feed import MeasurementFeed
from services.quality.inspection_workers import InspectionWorkers
from services.quality.persistence import ActivationRepository, MeasurementRepository
from services.quality.registry import SHIPPED_MODELS, ModelRegistry
from services.quality.servicer import SERVICE_NAME, QualityServicer
from services.runtime import db
from services.runtime.build_info import BuildInfo
from services.runtime.config import Settings
from services.runtime.event_stream import MemoryEventStream, RedisEventStream
from services.runtime.info import service_info
from services.runtime.server import ServiceParts
from services.runtime.unit_of_work import repository_scope

logger = logging.getLogger(__name__)


def measurement_feed_key(settings: Settings) -> str:
    """Replicas that share a database (and so its measurements) share the feed."""
    return f"{settings.service}:{settings.database_schema}:measurements"


def measurement_feed_for(settings: Settings) -> MeasurementFeed:
    """Redis Streams shared by every replica on the same database, else in-process."""
    if settings.redis.url:
        return MeasurementFeed(
            RedisEventStream(
                settings.redis.url,
                measurement_feed_key(settings),
                field=b"measurements",
                name="measurement feed",
            )
        )
    return MeasurementFeed(MemoryEventStream())


def compose(settings: Settings, build: BuildInfo) -> ServiceParts:
    engine = db.create_engine_for(settings)
    sessions = db.make_session_factory(engine)
    registry = ModelRegistry(
        shipped=settings.models_dir or SHIPPED_MODELS,
        trained=settings.data_dir / "models",
        activations=repository_scope(sessions, ActivationRepository),
    )
    workers = InspectionWorkers(
        settings.quality.inspection_workers,
        pool=settings.quality.inspection_pool,
        max_pixels=settings.quality.max_image_pixels,
    )
    inspected = Counter(
        "quality_parts_inspected", "Images inspected, by verdict.", ["verdict"], registry=None
    )
    inference = Histogram(
        "model_inference_seconds",
        "Time a model takes on one input.",
        ["model"],
        buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
        registry=None,
    )
    feed = measurement_feed_for(settings)
    servicer = QualityServicer(
        inspected=inspected,
        inference=inference,
        info=lambda: service_info(
            settings, build, SERVICE_NAME, model_versions=registry.active_versions()
        ),
        registry=registry,
        measurements=repository_scope(sessions, MeasurementRepository),
        clock=lambda: datetime.now(UTC),
        feed=feed,
        inspector=Inspector(),
        workers=workers,
        max_pixels=settings.quality.max_image_pixels,
        # Images of one stream read ahead: enough that no worker waits for its next.
        stream_in_flight=4 * settings.quality.inspection_workers,
    )

    last_refusal = ""

    def models_ready() -> bool:
        nonlocal last_refusal
        try:
            # Loads and hash-checks every active model once; then the inspection
            # workers start and load them too.
            ready = workers.warm(registry.load_active())
        except Exception as error:
            # Readiness is asked every few seconds: the reason is logged when it changes,
            # not every round.
            if str(error) != last_refusal:
                logger.exception("an active inspection model cannot be loaded")
                last_refusal = str(error)
            return False
        last_refusal = ""
        return ready

    def register(server: grpc.Server) -> None:
        quality_service_pb2_grpc.add_QualityServiceServicer_to_server(servicer, server)

    def close() -> None:
        workers.close()
        feed.close()
        engine.dispose()

    return ServiceParts(
        service_name=SERVICE_NAME,
        register=register,
        readiness_checks={"database": partial(db.database_ready, engine), "models": models_ready},
        close=close,
        collectors=(inspected, inference),
        model_versions=registry.active_versions,
    )
