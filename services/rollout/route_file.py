"""The traffic split in a route file (``rds.yaml``): read it back, render it again.

Where the routes are not a local file the controller rewrites from its topology (the
gateway-routes ConfigMap on Kubernetes), the split is whatever the file says; a new
split is the whole route configuration rendered again by
:func:`services.rollout.xds.render_routes` from the contract, as for the local gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.rollout import contract, cors, xds


class RouteFileError(ValueError):
    """The route file does not say every service's blue/green split."""


def route_weights(document: Any) -> dict[str, dict[str, int]]:
    """Each service's blue/green split in a route file (as xds.render_routes writes it:
    every route of a service carries the same split, the first one is read)."""
    weights: dict[str, dict[str, int]] = {}
    for resource in (document or {}).get("resources") or []:
        for host in resource.get("virtual_hosts") or []:
            for route in host.get("routes") or []:
                action = route.get("route") or {}
                for cluster in (action.get("weighted_clusters") or {}).get("clusters") or []:
                    service, _, color = str(cluster.get("name", "")).rpartition("-")
                    if service in contract.SERVICES and color in xds.COLORS:
                        weights.setdefault(service, {}).setdefault(color, int(cluster["weight"]))
    missing = [s for s in contract.SERVICES if set(weights.get(s, {})) != set(xds.COLORS)]
    if missing:
        raise RouteFileError(f"no blue/green split for {', '.join(missing)}")
    return weights


def render_route_file(
    weights: Mapping[str, Mapping[str, int]], version: str, previous: Any = None
) -> str:
    """The route file for these splits, from the contract as the local gateway's is,
    keeping the CORS policy of the ``previous`` route file (a deployment's own origins).

    Routes name clusters, never ports (Kubernetes clusters resolve each color's Service
    by DNS), so the layout carries none.
    """
    layout = {
        service: xds.ServiceLayout({color: () for color in xds.COLORS}, dict(weights[service]))
        for service in contract.SERVICES
    }
    routes = xds.render_routes(layout, cors_policy=cors.policy_of(previous))
    return xds.dump({"version_info": version, "resources": [routes]})
