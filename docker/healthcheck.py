"""Container health check (Docker/compose HEALTHCHECK): is this container's service ready?

Asks grpc.health.v1 on the service's own port (from its configuration, like the server)
for its full service name; exit 0 when SERVING. Kubernetes uses native gRPC probes
instead and never runs this.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime.config import ConfigError, load_settings


def main() -> int:
    service = os.environ.get("SERVICE", "")
    try:
        settings = load_settings(service)
    except ConfigError as error:
        print(f"healthcheck: {error}", file=sys.stderr)
        return 1
    name = f"manufacturing.{service}.v1.{service.capitalize()}Service"
    port = settings.server.health_port or settings.server.port
    request = health_pb2.HealthCheckRequest(service=name)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(request, timeout=2).status
    except grpc.RpcError as error:
        print(f"healthcheck: {name} on port {port}: {error.code().name}", file=sys.stderr)
        return 1
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
