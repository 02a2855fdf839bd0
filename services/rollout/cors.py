"""Which browser pages may call the suite through the gateway (CORS, for gRPC-Web).

The bootstrap runs Envoy's CORS filter; its policy is the virtual host's, in the route
configuration (:func:`services.rollout.xds.render_routes`). An origin is written as a
browser sends it (``https://dashboard.example.com``); ``:*`` in place of the port
allows any port of that host (a development server's port varies). The local gateway
allows :data:`DEVELOPMENT_ORIGINS`; a Kubernetes deployment allows none unless
configured (``GATEWAY_CORS_ORIGINS``, read by docker/render.py), and a rollout keeps
whatever its route file allows (:func:`policy_of`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

FILTER = "envoy.filters.http.cors"
DEVELOPMENT_ORIGINS = (
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
)
# What a gRPC-Web client sends: its framing headers, a deadline, credentials and the
# caller's request id.
ALLOW_HEADERS = (
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "authorization",
    "x-api-key",
    "x-request-id",
)
# What a page may read of a reply: a call's outcome, which version answered, and the
# request id to quote when reporting a problem.
EXPOSE_HEADERS = (
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-service-version",
    "x-request-id",
)
_ANY_PORT = ":*"
_ORIGIN = re.compile(r"^https?://[^/:*\s]+(:([0-9]{1,5}|\*))?$")


class CorsError(ValueError):
    """An allowed origin is not ``scheme://host[:port]``."""


def _matcher(origin: str) -> dict[str, Any]:
    if not _ORIGIN.match(origin):
        raise CorsError(f"not an origin (scheme://host[:port|:*]): {origin!r}")
    if origin.endswith(_ANY_PORT):
        host = re.escape(origin.removesuffix(_ANY_PORT))
        return {"safe_regex": {"regex": host + "(:[0-9]{1,5})?"}}
    return {"exact": origin}


def policy(origins: Sequence[str]) -> dict[str, Any]:
    """The CorsPolicy (per-filter config) allowing ``origins``; empty allows none."""
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [_matcher(origin) for origin in origins],
        "allow_methods": "POST, OPTIONS",
        "allow_headers": ",".join(ALLOW_HEADERS),
        "expose_headers": ",".join(EXPOSE_HEADERS),
        "max_age": "600",
        # A preflight from an origin not allowed ends at Envoy (no allow headers), never
        # at a backend, which knows nothing of OPTIONS.
        "forward_not_matching_preflights": False,
    }


def policy_of(route_document: Any) -> dict[str, Any]:
    """The policy of a route file's virtual host; none (no origin) if it has none."""
    for resource in (route_document or {}).get("resources") or []:
        for host in resource.get("virtual_hosts") or []:
            found = (host.get("typed_per_filter_config") or {}).get(FILTER)
            if found:
                return dict(found)
    return policy(())
