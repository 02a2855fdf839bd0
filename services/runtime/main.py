"""The process entry point shared by the services' ``__main__`` modules."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from services.runtime import build_info
from services.runtime.build_info import BuildInfo
from services.runtime.config import ConfigError, Settings, load_settings
from services.runtime.logs import configure_logging
from services.runtime.server import GrpcService, ServiceParts, stop_on_signals

logger = logging.getLogger(__name__)

Compose = Callable[[Settings, BuildInfo], ServiceParts]


def run(service: str, compose: Compose, version_file: Path) -> int:
    """Load settings, build the service, serve until SIGTERM/SIGINT, stop gracefully."""
    try:
        settings = load_settings(service)
    except ConfigError as error:
        print(f"{service}: configuration error: {error}", file=sys.stderr)
        return 2
    build = build_info.collect(version_file)
    configure_logging(
        settings.logging, service=service, version=build.version, color=settings.color
    )
    parts = compose(settings, build)
    grpc_service = GrpcService(settings, build, parts)
    stop_requested = stop_on_signals(grpc_service)
    grpc_service.start()
    stop_requested.wait()
    grpc_service.stop()
    return 0
