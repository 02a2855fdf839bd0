"""Secrets never reach the logs: a real service process fed secrets through every path.

Passwords in DATABASE_URL and REDIS_URL, a password read from a *_FILE secret, bearer
tokens (valid and forged) and API keys (known and unknown) all pass through; then every
line the process wrote, at DEBUG, is searched for each of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb
from manufacturing.scheduling.v1 import scheduling_service_pb2_grpc

from services.runtime.auth import digest
from services.runtime.config import load_settings
from tests.backends import drop_schemas, unique_name
from tests.harness import channel_to, migrate
from tests.service.test_auth import ISSUER, Issuer

DB_PASSWORD = "Db-pw-4f9c1e7a"
REDIS_PASSWORD = "Redis-pw-8b2d6f0c"
API_KEY = "mk_secret_0a1b2c3d4e5f60718293"
FORGED_KEY = "mk_forged_99887766554433221100"


def test_no_secret_is_ever_logged(tmp_path, postgres_url, postgres_admin):
    issuer = Issuer()
    (tmp_path / "jwks.json").write_text(issuer.jwks())
    (tmp_path / "api-keys").write_text(f"press-7 {digest(API_KEY)}\n")
    (tmp_path / "db-password").write_text(DB_PASSWORD)
    schema = unique_name()
    base = postgres_url.replace("postgres@", "postgres:${DB_PASSWORD}@", 1)
    environ = {
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "DEBUG",
        "MFG_DATABASE__URL": base,
        "DB_PASSWORD_FILE": str(tmp_path / "db-password"),
        "MFG_DATABASE__SCHEMA_NAME": schema,
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/15",
        "AUTH_ENABLED": "true",
        "AUTH_JWKS_FILE": str(tmp_path / "jwks.json"),
        "AUTH_ISSUER": ISSUER,
        "AUTH_API_KEYS_FILE": str(tmp_path / "api-keys"),
        "MFG_SERVER__PORT": "0",
        "MFG_METRICS__PORT": "0",
        "MFG_SERVER__SHUTDOWN_DELAY_S": "0",
    }
    # The URL holds a reference; the password arrives from the file.
    settings = load_settings("scheduling", environ=environ)
    assert DB_PASSWORD in settings.database.url
    migrate(settings)
    token = issuer.token("operator")
    forged = Issuer().token("admin")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.scheduling"],
        env={**os.environ, **environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        details: list[str] = []
        port = 0
        deadline = time.monotonic() + 30
        while not port and time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if '"serving"' in line:
                port = int(line.split('"address": "')[1].split('"')[0].rsplit(":", 1)[1])
        assert port, "".join(lines)
        with channel_to(port) as channel:
            stub = scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
            for metadata in (
                (("authorization", f"Bearer {token}"),),
                (("authorization", f"Bearer {forged}"),),
                (("x-api-key", API_KEY),),
                (("x-api-key", FORGED_KEY),),
            ):
                try:
                    stub.ListSchedules(pb.ListSchedulesRequest(), metadata=metadata, timeout=5)
                except grpc.RpcError as error:
                    details.append(str(error.details()))
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
        logged = "".join(lines) + rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        drop_schemas(postgres_admin, [schema])
    assert len(details) == 3  # the forged token, the machine key, the forged key
    assert not any(s in d for d in details for s in (token, forged, API_KEY, FORGED_KEY))
    assert '"denied"' in logged  # the denials were logged, without their credentials
    for secret in (DB_PASSWORD, REDIS_PASSWORD, token, forged, API_KEY, FORGED_KEY):
        assert secret not in logged, f"a secret reached the logs: {secret[:6]}..."
