"""Layered configuration, validated into one frozen settings object.

Layers, later ones winning: ``config/base.yaml`` → ``config/<environment>.yaml`` →
environment variables ``MFG_<SECTION>__<KEY>`` (e.g. ``MFG_SERVER__PORT=50061``).
Each YAML file has a ``defaults`` section shared by every service and a ``services``
section with per-service overrides. String values may reference the environment as
``${VAR}`` or ``${VAR:-default}``; a secret ``VAR`` may instead be given as a file named
by ``VAR_FILE`` (Docker and Kubernetes secrets). Settings are read once at start; any
problem raises ConfigError naming the offending key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENVIRONMENTS = ("development", "staging", "production")
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
ENV_PREFIX = "MFG_"
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Passwords that ship in examples and images; production must not run with them.
_WELL_KNOWN_PASSWORDS = frozenset(
    {"", "postgres", "password", "changeme", "secret", "admin", "redis"}
)


class ConfigError(Exception):
    """The configuration cannot be loaded; the message names the key at fault."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    max_workers: int = Field(default=32, ge=1, le=1024)
    # Calls beyond this are answered RESOURCE_EXHAUSTED instead of queueing without bound.
    max_concurrent_rpcs: int = Field(default=256, ge=1)
    max_message_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Messages one client stream may carry before it is ended RESOURCE_EXHAUSTED.
    max_stream_messages: int = Field(default=100_000, ge=1)
    # Deadline of a unary call whose caller set none (the gateway's route cap, 30 s,
    # for calls that reach the service directly); streams keep only the caller's.
    default_deadline_s: float = Field(default=30.0, gt=0, le=3600)
    # After SIGTERM: health turns NOT_SERVING, then new calls are still taken for
    # shutdown_delay_s (balancers notice), then in-flight calls get grace_period_s.
    shutdown_delay_s: float = Field(default=1.0, ge=0)
    grace_period_s: float = Field(default=10.0, ge=0)
    keepalive_time_s: float = Field(default=60.0, gt=0)
    keepalive_timeout_s: float = Field(default=20.0, gt=0)
    # Balancers only move clients when connections end: cap their age.
    max_connection_age_s: float = Field(default=300.0, gt=0)
    max_connection_age_grace_s: float = Field(default=30.0, ge=0)
    # A plaintext port serving only grpc.health.v1, for probes that cannot speak TLS
    # (Kubernetes gRPC probes); unset means none. 0 picks a free port.
    health_port: int | None = Field(default=None, ge=0, le=65535)


class TlsSettings(_Section):
    """TLS on the gRPC port; with client_ca_file, mutual TLS (callers need a certificate)."""

    enabled: bool = False
    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""

    @model_validator(mode="after")
    def _files_when_enabled(self) -> TlsSettings:
        if self.enabled and not (self.cert_file and self.key_file):
            raise ValueError("tls.cert_file and tls.key_file are required when enabled")
        return self


class DatabaseSettings(_Section):
    # Empty means the embedded default: a SQLite file per service under data_dir.
    url: str = ""
    # PostgreSQL schema holding the service's tables; empty means the service's name.
    schema_name: str = Field(default="", pattern=r"^([a-z_][a-z0-9_]{0,62})?$")
    pool_size: int = Field(default=5, ge=1)
    connect_timeout_s: float = Field(default=5.0, gt=0)


class RedisSettings(_Section):
    # Empty means an in-process equivalent, fit for a single replica.
    url: str = ""


class AuthSettings(_Section):
    """Caller authentication and per-method roles (see services/runtime/access.py)."""

    enabled: bool = False
    # JWK set (JSON) of the token issuer's public keys.
    jwks_file: str = ""
    issuer: str = ""
    audience: str = ""
    role_claim: str = "roles"
    # Lines "name sha256-hex" for machine API keys; the keys themselves are not stored.
    api_keys_file: str = ""

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> AuthSettings:
        if self.enabled and not (self.jwks_file or self.api_keys_file):
            raise ValueError("auth.jwks_file or auth.api_keys_file is required when enabled")
        if self.enabled and self.jwks_file and not (self.issuer and self.audience):
            raise ValueError("auth.issuer and auth.audience are required with a JWK set")
        return self


class MetricsSettings(_Section):
    """Prometheus metrics over HTTP on a port of their own (0 picks a free one)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = True
    # Optional rotating log file in addition to stdout.
    file: str = ""
    max_size_mb: int = Field(default=100, ge=1)
    backup_count: int = Field(default=10, ge=0)
    # Rotated files are gzipped (name.log.1.gz ...); base.yaml turns it on.
    compress: bool = False
    # Rotated files older than this are deleted at each rotation and at start; 0 keeps them.
    max_age_days: float = Field(default=0, ge=0)


class SchedulingSettings(_Section):
    """The scheduling service's solver; the other services leave this section out."""

    # CP-SAT workers per solve; 0 means the CPU count, at most 8.
    solver_workers: int = Field(default=0, ge=0, le=64)
    # Time limit of a solve whose request sets none.
    default_time_limit_s: float = Field(default=10.0, gt=0, le=3600)
    # Largest problem accepted, in operations over all jobs; larger ones are refused
    # INVALID_ARGUMENT before any work. At most the contract's own ceiling.
    max_operations: int = Field(default=50_000, ge=1, le=50_000)
    # The maintenance service (host:port), asked when a request wants maintenance taken
    # into account, and the longest it is waited for.
    maintenance_address: str = ""
    maintenance_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # PEM CA bundle: when set, the maintenance channel is TLS verified against it (the
    # production gateway's listener); empty means plaintext.
    maintenance_tls_ca_file: str = ""


InspectionPool = Literal["processes", "threads"]


class QualitySettings(_Section):
    """The quality service's inspection limits; the other services leave this section out."""

    # Images above this many pixels are refused from their header, before decoding.
    max_image_pixels: int = Field(default=4_000_000, ge=16 * 16, le=100_000_000)
    # Inspections run at once: one per core. In worker processes by default, each with
    # its own GIL; "threads" keeps them in the serving process (half the throughput on
    # small images) for platforms that may not start processes.
    inspection_workers: int = Field(default=2, ge=1, le=64)
    inspection_pool: InspectionPool = "processes"


class Settings(_Section):
    service: str
    environment: Literal["development", "staging", "production"]
    color: str = ""
    data_dir: Path = Path("var")
    # Where the service's released models are read from (e.g. signed ones on a mounted
    # volume); unset means the ones packaged with the service.
    models_dir: Path | None = None
    readiness_interval_s: float = Field(default=2.0, gt=0)
    server: ServerSettings
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    auth: AuthSettings = AuthSettings()
    tls: TlsSettings = TlsSettings()
    scheduling: SchedulingSettings = SchedulingSettings()
    quality: QualitySettings = QualitySettings()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / (self.service + '.db')}"

    @property
    def database_schema(self) -> str:
        return self.database.schema_name or self.service

    @model_validator(mode="after")
    def _production_is_hardened(self) -> Settings:
        if self.environment != "production":
            return self
        if not self.database.url:
            raise ValueError("database.url: production needs a real database (set DATABASE_URL)")
        if not self.auth.enabled:
            raise ValueError("auth.enabled: production requires authenticated callers")
        for key, url in (("database.url", self.database.url), ("redis.url", self.redis.url)):
            if url and not url.startswith("sqlite") and _password(url) in _WELL_KNOWN_PASSWORDS:
                raise ValueError(f"{key}: production refuses an empty or default password")
        return self


def _password(url: str) -> str:
    return urlsplit(url).password or ""


def substitute(value: Any, environ: Mapping[str, str], key: str = "") -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {
            k: substitute(v, environ, f"{key}.{k}" if key else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [substitute(v, environ, f"{key}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = _lookup(name, environ)
        if found is not None and found != "":
            return found
        if default is not None:
            return default
        raise ConfigError(f"{key}: environment variable {name} is not set (nor {name}_FILE)")

    return _REFERENCE.sub(replace, value)


def _lookup(name: str, environ: Mapping[str, str]) -> str | None:
    if name in environ:
        return environ[name]
    secret_file = environ.get(f"{name}_FILE")
    if secret_file is None:
        return None
    try:
        return Path(secret_file).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise ConfigError(f"{name}_FILE: cannot read {secret_file}: {error.strerror}") from error


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in override.items():
        merged[k] = (
            _merge(merged[k], v)
            if isinstance(v, Mapping) and isinstance(merged.get(k), dict)
            else v
        )
    return merged


def _read_layer(path: Path, service: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as error:
        raise ConfigError(f"{path.name}: configuration file not found at {path}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path.name}: not valid YAML: {error}") from error
    if not isinstance(document, dict) or not set(document) <= {"defaults", "services"}:
        raise ConfigError(f"{path.name}: top level may only hold 'defaults' and 'services'")
    services = document.get("services") or {}
    return _merge(document.get("defaults") or {}, services.get(service) or {})


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name.endswith("_FILE"):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return overrides


def load_settings(
    service: str,
    environ: Mapping[str, str] | None = None,
    config_dir: Path = DEFAULT_CONFIG_DIR,
) -> Settings:
    """Read the layers for ``service`` in environment ``APP_ENV`` (default development)."""
    environ = os.environ if environ is None else environ
    environment = environ.get("APP_ENV", "development")
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV: {environment!r} is not one of {', '.join(ENVIRONMENTS)}")
    layered = _merge(
        _read_layer(config_dir / "base.yaml", service),
        _read_layer(config_dir / f"{environment}.yaml", service),
    )
    layered = _merge(layered, _env_overrides(environ))
    raw = substitute(layered, environ)
    try:
        return Settings.model_validate({**raw, "service": service, "environment": environment})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigError(f"invalid configuration for {service}: {problems}") from error
