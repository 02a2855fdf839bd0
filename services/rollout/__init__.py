"""Blue-green and canary rollouts of the suite's services behind the Envoy gateway.

- :mod:`services.rollout.contract`: what the gateway needs from the contract (service
  names, which methods are safe to retry), read from the generated descriptors;
- :mod:`services.rollout.xds`: the gateway's routes (RDS) and clusters (CDS) as files
  Envoy watches, written atomically so a weight change needs no restart;
- :mod:`services.rollout.state`: the topology (ports, versions, weights, processes)
  shared by ``make up`` and the ``rollout`` command;
- :mod:`services.rollout.controller`: one rollout, from starting the idle color to
  draining the old one, or rolling back;
- :mod:`services.rollout.drain`: when a color is drained (no new call, nothing in flight
  but subscriptions), from Envoy's counts and the color's own metrics;
- :mod:`services.rollout.platform`: where a rollout acts, :mod:`services.rollout.local`
  (processes and watched files) or :mod:`services.rollout.kubernetes` (Deployments and
  the gateway-routes ConfigMap, through :mod:`services.rollout.kubectl`), which reads
  and renders the split of a route file with :mod:`services.rollout.route_file`;
- :mod:`services.rollout.cli`: ``rollout SERVICE --version V ...`` and ``rollout status``.
"""
