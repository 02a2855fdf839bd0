"""A stand-in for kubectl and one namespace of a cluster, for the rollout controller's tests.

Run as ``kubectl`` (through a wrapper script on PATH). Every call appends its arguments
as a JSON line to ``$FAKE_KUBECTL_CALLS``; the cluster is the JSON file
``$FAKE_KUBECTL_STATE``:

- ``namespace``: the only namespace that exists;
- ``deployments``: name -> ``{"image", "replicas", "container", "annotations"}``
  (``annotate`` without --overwrite refuses to change one that is set), optionally
  ``"metrics_port"``; a Deployment named ``<service>-<color>`` has ``replicas`` pods,
  ready unless its image is listed in ``unready_images`` (the readiness probe keeps
  failing), their container listing the port named ``metrics`` if it has one;
- ``configmaps``: name -> ``{"data", "resourceVersion"}``; ``replace`` is refused with a
  Conflict when the resourceVersion sent is not the current one, and ``conflicts``
  more times (another writer got in between);
- ``services``: name -> gRPC port; ``gateway_pods``: names of the ready gateway pods;
- ``forwards``: ``kind/name`` -> the local port a port-forward to it reports (where the
  test listens in that pod's stead).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any, NoReturn

STATE = os.environ["FAKE_KUBECTL_STATE"]
CALLS = os.environ["FAKE_KUBECTL_CALLS"]


def load() -> dict[str, Any]:
    with open(STATE, encoding="utf-8") as f:
        return json.load(f)


def save(state: dict[str, Any]) -> None:
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(STATE))
    with os.fdopen(handle, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(temporary, STATE)


def fail(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    sys.exit(1)


def ready(state: dict[str, Any], deployment: dict[str, Any]) -> bool:
    return deployment["image"] not in state["unready_images"]


def pods_of(state: dict[str, Any], name: str) -> list[dict[str, Any]]:
    deployment = state["deployments"][name]
    is_ready = ready(state, deployment)
    condition = {"type": "Ready", "status": "True" if is_ready else "False"}
    if not is_ready:
        condition |= {
            "reason": "ContainersNotReady",
            "message": f"containers with unready status: [{deployment['container']}]",
        }
    ports = [{"name": "grpc", "containerPort": 50052}]
    if "metrics_port" in deployment:
        ports.append({"name": "metrics", "containerPort": deployment["metrics_port"]})
    return [
        {
            "metadata": {"name": f"{name}-{index}"},
            "spec": {"containers": [{"name": deployment["container"], "ports": ports}]},
            "status": {
                "conditions": [condition],
                "containerStatuses": [
                    {"name": deployment["container"], "restartCount": 0, "ready": is_ready}
                ],
            },
        }
        for index in range(deployment["replicas"])
    ]


def get(state: dict[str, Any], kind: str, rest: list[str]) -> Any:
    if kind == "configmap":
        (name,) = rest
        configmap = state["configmaps"].get(name) or fail(f'configmaps "{name}" not found')
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "resourceVersion": configmap["resourceVersion"]},
            "data": configmap["data"],
        }
    if kind == "deployment":
        (name,) = rest
        deployment = state["deployments"].get(name) or fail(f'deployments "{name}" not found')
        container = {"name": deployment["container"], "image": deployment["image"]}
        return {
            "metadata": {"name": name},
            "spec": {
                "replicas": deployment["replicas"],
                "template": {"spec": {"containers": [container]}},
            },
        }
    if kind == "service":
        (name,) = rest
        port = state["services"].get(name) or fail(f'services "{name}" not found')
        return {"spec": {"ports": [{"name": "grpc", "port": port}]}}
    if kind == "pods":
        flag, selector = rest
        assert flag == "--selector", rest
        labels = dict(pair.split("=") for pair in selector.split(","))
        name = labels["app.kubernetes.io/name"]
        if name == "gateway":
            items = [
                {
                    "metadata": {"name": pod},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                }
                for pod in state["gateway_pods"]
            ]
        else:
            items = pods_of(state, f"{name}-{labels['app.kubernetes.io/color']}")
        return {"items": items}
    fail(f"fake kubectl cannot get {kind}")


def main(args: list[str]) -> None:
    with open(CALLS, "a", encoding="utf-8") as f:
        f.write(json.dumps(args) + "\n")
    state = load()
    if args[:2] != ["--namespace", state["namespace"]]:
        fail(f"Error from server (NotFound): namespaces {args[1:2]} not found")
    verb, rest = args[2], args[3:]
    if verb == "get":
        assert rest[-2:] == ["--output", "json"], rest
        print(json.dumps(get(state, rest[0], rest[1:-2])))
    elif verb == "set" and rest[0] == "image":
        name = rest[1].removeprefix("deployment/")
        container, image = rest[2].split("=", 1)
        if container != state["deployments"][name]["container"]:
            fail(f'error: unable to find container named "{container}"')
        state["deployments"][name]["image"] = image
        save(state)
    elif verb == "annotate":
        target, change = rest
        annotations = state["deployments"][target.removeprefix("deployment/")]["annotations"]
        if change.endswith("-"):
            annotations.pop(change[:-1], None)
        else:
            key, value = change.split("=", 1)
            if key in annotations:
                fail(
                    "error: --overwrite is false but found the following declared "
                    f"annotation(s): '{key}' already has a value ({annotations[key]})"
                )
            annotations[key] = value
        save(state)
    elif verb == "scale":
        name = rest[0].removeprefix("deployment/")
        state["deployments"][name]["replicas"] = int(rest[1].removeprefix("--replicas="))
        save(state)
    elif verb == "rollout" and rest[0] == "status":
        name = rest[1].removeprefix("deployment/")
        if not ready(state, state["deployments"][name]):
            fail("error: timed out waiting for the condition")
        print(f'deployment "{name}" successfully rolled out')
    elif verb == "replace" and rest == ["--filename", "-"]:
        sent = json.load(sys.stdin)
        name = sent["metadata"]["name"]
        configmap = state["configmaps"][name]
        if (
            sent["metadata"]["resourceVersion"] != configmap["resourceVersion"]
            or state["conflicts"]
        ):
            state["conflicts"] = max(0, state["conflicts"] - 1)
            configmap["resourceVersion"] = str(int(configmap["resourceVersion"]) + 1)
            save(state)
            fail(
                f'Error from server (Conflict): error when replacing "STDIN": Operation cannot '
                f'be fulfilled on configmaps "{name}": the object has been modified'
            )
        configmap["data"] = sent["data"]
        configmap["resourceVersion"] = str(int(configmap["resourceVersion"]) + 1)
        save(state)
    elif verb == "port-forward":
        target, port = rest[-2:]
        local = state["forwards"].get(target) or fail(f"error: {target} not found")
        print(f"Forwarding from 127.0.0.1:{local} -> {port.lstrip(':')}", flush=True)
        while True:  # until the controller ends the forward
            time.sleep(60)
    else:
        fail(f"fake kubectl: unsupported {' '.join(args)}")


if __name__ == "__main__":
    main(sys.argv[1:])
