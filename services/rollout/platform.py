"""Where a rollout acts: the two colors of a service and the gateway in front of them.

The controller (:mod:`services.rollout.controller`) runs one algorithm everywhere; a
platform says how to start a color at a version, how to see it ready, how to reach it
and the gateway's admin interface, how to move the weights and how to retire a color:

- ``local`` (:mod:`services.rollout.local`): processes on this machine and the route
  file Envoy watches, as ``make up`` laid them out;
- ``kubernetes`` (:mod:`services.rollout.kubernetes`): a Deployment per color and the
  gateway-routes ConfigMap, through ``kubectl``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from services.rollout.envoy_admin import Gateway
from services.rollout.xds import COLORS

if TYPE_CHECKING:
    from services.rollout.controller import RolloutOptions

PLATFORMS = ("local", "kubernetes")


class Events(Protocol):
    """Records one step of a rollout (its history and the operator's terminal)."""

    def __call__(self, event: str, /, **details: Any) -> None: ...


@dataclass(frozen=True)
class ServiceView:
    """One service as the platform runs it now."""

    live: str
    weights: Mapping[str, int]
    versions: Mapping[str, str]

    @property
    def idle(self) -> str:
        return next(c for c in COLORS if c != self.live)


class Platform(ABC):
    name: str
    # How long a rewritten route configuration may take to reach every Envoy, and how
    # often a step polls the gateway and the new color.
    route_timeout_s: float = 10.0
    poll_s: float = 0.1

    def exclusive(self, service: str) -> contextlib.AbstractContextManager[None]:
        """Held for a whole rollout of ``service``, against rollouts from other machines
        (the controller's lock file covers this one)."""
        return contextlib.nullcontext()

    def describe(self) -> dict[str, str]:
        """What a history record says about where the rollout ran."""
        return {"platform": self.name}

    @abstractmethod
    def service(self, service: str) -> ServiceView: ...

    @abstractmethod
    def release(self, service: str, version: str, origin: str | None) -> str:
        """What will run ``version``: a source tree (local) or an image (Kubernetes).

        ``origin`` is the operator's choice (``--source`` or ``--image``); without one
        the platform finds it. Raises :class:`~services.rollout.processes.LaunchError`.
        """

    @abstractmethod
    def start(
        self,
        service: str,
        color: str,
        version: str,
        release: str,
        options: RolloutOptions,
        events: Events,
    ) -> None:
        """Run ``release`` as ``color``, not waiting for readiness."""

    @abstractmethod
    def wait_ready(self, service: str, color: str, options: RolloutOptions) -> None:
        """Until every replica of ``color`` is ready; raises ``checks.CheckFailed``."""

    @abstractmethod
    def endpoints(self, service: str, color: str) -> contextlib.AbstractContextManager[list[int]]:
        """Local ports reaching ``color`` straight, bypassing the gateway."""

    def server_name(self, service: str, color: str) -> str:
        """The name ``color``'s certificate carries, when it is not the address the
        checks dial (:meth:`endpoints`); empty: that address."""
        return ""

    def metrics_endpoints(
        self, service: str, color: str
    ) -> contextlib.AbstractContextManager[list[int]]:
        """Local ports reaching each replica's metrics endpoint, for the drain to see which
        calls are in flight (:mod:`services.rollout.drain`); none: it judges by the
        gateway alone."""
        return contextlib.nullcontext([])

    @abstractmethod
    def gateway(self) -> contextlib.AbstractContextManager[Gateway]: ...

    @abstractmethod
    def replicas(self, service: str, color: str) -> int:
        """How many hosts of ``color`` the gateway should see healthy."""

    @abstractmethod
    def write_weights(self, service: str, weights: Mapping[str, int]) -> str:
        """Publish the new split to the gateway; returns the route version to wait for."""

    @abstractmethod
    def alive(self, service: str, color: str) -> bool:
        """No replica of ``color`` has died since it started."""

    @abstractmethod
    def mark_live(self, service: str, color: str) -> None:
        """``color`` serves the service from now on (its weights already say so)."""

    @abstractmethod
    def stop(self, service: str, color: str, timeout: float) -> bool:
        """Retire ``color``; True when it ended gracefully within ``timeout``."""

    @abstractmethod
    def status(self) -> dict[str, Any]:
        """Per service and color: version, weight, live, replicas, health in the gateway."""
