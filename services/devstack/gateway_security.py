"""TLS, JWT and per-client rate limits for the gateway, added to the bootstrap by settings.

``gateway/envoy.yaml`` is the plain development gateway: HTTP/2 without TLS, no tokens.
:func:`secure` turns that bootstrap into the hardened one from a :class:`GatewaySecurity`
(what `python -m services.devstack --gateway-tls/--jwks` and the tests pass, and what a
deployment renders with its certificate and JWK set paths):

- **TLS listener** from PEM files (the dev-cert command's output locally, a mounted
  Kubernetes secret in a cluster); with a client CA, callers need a certificate too.
- **JWT** (``envoy.filters.http.jwt_authn``) against a JWK set from a file or a URI. A
  call without a valid token ends UNAUTHENTICATED at Envoy. The token is forwarded
  (``authorization`` kept) so each service verifies it again and reads the roles;
  the verified payload also goes upstream in ``x-jwt-payload``. Open without a token:
  the gateway's ``/health`` and ``/ready``, grpc.health.v1 and reflection (as in the
  services), and calls carrying ``x-api-key`` (machines; the services check the key).
- **Per-client rate limit** (``envoy.filters.http.local_ratelimit``, one token bucket
  per client in each Envoy process), answered RESOURCE_EXHAUSTED. The client is the
  verified JWT subject (from the filter's dynamic metadata, which a caller cannot
  forge), else the ``x-api-key`` presented; without JWT the caller's IP address.

Only the standard library: deployment tooling renders it without the service stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_TYPE = "type.googleapis.com/"
JWT_FILTER = "envoy.filters.http.jwt_authn"
RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit"
JWT_PROVIDER = "manufacturing"
JWKS_CLUSTER = "jwks"
# Where jwt_authn puts the verified payload in the request's dynamic metadata.
PAYLOAD_METADATA_KEY = "jwt_payload"
PAYLOAD_HEADER = "x-jwt-payload"
API_KEY_HEADER = "x-api-key"
# Paths that need no token at the gateway (matching the services' open services).
OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
)
OPEN_PATHS = ("/health", "/ready")
CLOCK_SKEW_S = 30  # as services/runtime/auth.py


class GatewaySecurityError(ValueError):
    """The security settings are incomplete or the bootstrap is not the expected shape."""


@dataclass(frozen=True)
class ListenerTls:
    """The gateway's own certificate; with ``client_ca_file`` callers must show one too."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""


@dataclass(frozen=True)
class Jwt:
    """Tokens the gateway accepts: issuer, audiences and the issuer's public keys."""

    issuer: str
    audiences: tuple[str, ...]
    jwks_file: str = ""
    jwks_uri: str = ""  # https://issuer/.well-known/jwks.json, fetched and cached
    jwks_cache_s: int = 600

    def __post_init__(self) -> None:
        if bool(self.jwks_file) == bool(self.jwks_uri):
            raise GatewaySecurityError("jwt: give exactly one of jwks_file and jwks_uri")
        if not self.issuer or not self.audiences:
            raise GatewaySecurityError("jwt: issuer and audiences are required")


@dataclass(frozen=True)
class RateLimit:
    """Token bucket per client: ``requests_per_s`` sustained, bursts up to ``burst``."""

    requests_per_s: int
    burst: int

    def __post_init__(self) -> None:
        if self.requests_per_s < 1 or self.burst < self.requests_per_s:
            raise GatewaySecurityError("rate_limit: requests_per_s >= 1 and burst >= it")


@dataclass(frozen=True)
class GatewaySecurity:
    tls: ListenerTls | None = None
    jwt: Jwt | None = None
    rate_limit: RateLimit | None = None


def _file(path: str) -> dict[str, str]:
    return {"filename": path}


def listener_tls(tls: ListenerTls) -> dict[str, Any]:
    """The listener's transport socket: TLS 1.2+, ALPN h2 for gRPC and http/1.1 for curl."""
    context: dict[str, Any] = {
        "common_tls_context": {
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_certificates": [
                {"certificate_chain": _file(tls.cert_file), "private_key": _file(tls.key_file)}
            ],
        }
    }
    if tls.client_ca_file:
        context["require_client_certificate"] = True
        context["common_tls_context"]["validation_context"] = {
            "trusted_ca": _file(tls.client_ca_file)
        }
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _TYPE + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            **context,
        },
    }


def _jwks_source(jwt: Jwt) -> dict[str, Any]:
    if jwt.jwks_file:
        return {"local_jwks": _file(jwt.jwks_file)}
    return {
        "remote_jwks": {
            "http_uri": {"uri": jwt.jwks_uri, "cluster": JWKS_CLUSTER, "timeout": "5s"},
            "cache_duration": f"{jwt.jwks_cache_s}s",
            # Fetched at start, not on the first call; retried while the issuer is down.
            "async_fetch": {"fast_listener": False},
            "retry_policy": {"num_retries": 3},
        }
    }


def jwt_filter(jwt: Jwt) -> dict[str, Any]:
    provider = {
        "issuer": jwt.issuer,
        "audiences": list(jwt.audiences),
        **_jwks_source(jwt),
        # The services verify the token again and read its roles.
        "forward": True,
        "forward_payload_header": PAYLOAD_HEADER,
        "payload_in_metadata": PAYLOAD_METADATA_KEY,
        "clock_skew_seconds": CLOCK_SKEW_S,
    }
    open_rules: list[dict[str, Any]] = [{"match": {"path": path}} for path in OPEN_PATHS]
    open_rules += [{"match": {"prefix": prefix}} for prefix in OPEN_PREFIXES]
    # Machines authenticate with an API key, which only the services can check.
    open_rules.append(
        {"match": {"prefix": "/", "headers": [{"name": API_KEY_HEADER, "present_match": True}]}}
    )
    return {
        "name": JWT_FILTER,
        "typed_config": {
            "@type": _TYPE + "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {JWT_PROVIDER: provider},
            "rules": [
                *open_rules,
                {"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}},
            ],
        },
    }


def _client_descriptors(with_jwt: bool) -> list[dict[str, Any]]:
    """Which client a call counts against (one descriptor per call)."""
    if not with_jwt:
        return [{"actions": [{"remote_address": {}}]}]
    subject = {
        "metadata": {
            "descriptor_key": "subject",
            "metadata_key": {
                "key": JWT_FILTER,
                "path": [{"key": PAYLOAD_METADATA_KEY}, {"key": "sub"}],
            },
            "source": "DYNAMIC",
        }
    }
    api_key = {"request_headers": {"header_name": API_KEY_HEADER, "descriptor_key": "api_key"}}
    # A call has a verified subject or an API key (jwt_authn lets nothing else through
    # to a backend), so exactly one of these applies.
    return [{"actions": [subject]}, {"actions": [api_key]}]


def rate_limit_filter(limit: RateLimit, *, with_jwt: bool) -> dict[str, Any]:
    bucket = {
        "max_tokens": limit.burst,
        "tokens_per_fill": limit.requests_per_s,
        "fill_interval": "1s",
    }
    keys = ["remote_address"] if not with_jwt else ["subject", "api_key"]
    always = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    return {
        "name": RATE_LIMIT_FILTER,
        "typed_config": {
            "@type": _TYPE + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "per_client",
            # An empty value is a wildcard: every distinct client gets a bucket of its
            # own (at most max_dynamic_descriptors of them, least recently used go).
            "descriptors": [{"entries": [{"key": key}], "token_bucket": bucket} for key in keys],
            "max_dynamic_descriptors": 10_000,
            "rate_limits": _client_descriptors(with_jwt),
            "filter_enabled": {"runtime_key": "per_client_rate_limit_enabled", **always},
            "filter_enforced": {"runtime_key": "per_client_rate_limit_enforced", **always},
            # gRPC callers get RESOURCE_EXHAUSTED (14 UNAVAILABLE would invite retries).
            "rate_limited_as_resource_exhausted": True,
        },
    }


def jwks_cluster(uri: str) -> dict[str, Any]:
    """A cluster for the issuer's host, so Envoy can fetch the JWK set (HTTPS verified)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GatewaySecurityError(f"jwt.jwks_uri: not an http(s) URL: {uri!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    cluster: dict[str, Any] = {
        "name": JWKS_CLUSTER,
        "type": "STRICT_DNS",
        "connect_timeout": "5s",
        "dns_lookup_family": "V4_PREFERRED",
        "load_assignment": {
            "cluster_name": JWKS_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {
                                        "address": parts.hostname,
                                        "port_value": port,
                                    }
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }
    if parts.scheme == "https":
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": _TYPE + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": parts.hostname,
                "common_tls_context": {
                    "validation_context": {
                        "trusted_ca": _file("/etc/ssl/certs/ca-certificates.crt"),
                        "match_typed_subject_alt_names": [
                            {"san_type": "DNS", "matcher": {"exact": parts.hostname}}
                        ],
                    }
                },
            },
        }
    return cluster


def _listener(config: Mapping[str, Any]) -> dict[str, Any]:
    try:
        (listener,) = config["static_resources"]["listeners"]
        listener_config: dict[str, Any] = listener
    except (KeyError, TypeError, ValueError) as error:
        raise GatewaySecurityError("the bootstrap must have exactly one listener") from error
    return listener_config


def secure(config: dict[str, Any], security: GatewaySecurity) -> None:
    """Add ``security`` to the bootstrap ``config`` in place (see the module docstring)."""
    listener = _listener(config)
    (chain,) = listener["filter_chains"]
    (manager,) = chain["filters"]
    filters: list[dict[str, Any]] = manager["typed_config"]["http_filters"]
    # After the health check (``/ready`` answers without a token), before the rest: a
    # call is authenticated, then counted against its client, then transcoded and routed.
    position = 1 + next(
        (i for i, f in enumerate(filters) if f["name"] == "envoy.filters.http.health_check"), -1
    )
    added: list[dict[str, Any]] = []
    if security.jwt is not None:
        added.append(jwt_filter(security.jwt))
        if security.jwt.jwks_uri:
            config["static_resources"].setdefault("clusters", []).append(
                jwks_cluster(security.jwt.jwks_uri)
            )
    if security.rate_limit is not None:
        added.append(rate_limit_filter(security.rate_limit, with_jwt=security.jwt is not None))
    filters[position:position] = added
    if security.tls is not None:
        chain["transport_socket"] = listener_tls(security.tls)
