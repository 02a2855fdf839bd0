"""A WatchAlerts subscriber through the gateway keeps every alert across a blue-green switch.

The real maintenance service runs as blue behind a real Envoy, both colors on one
PostgreSQL schema and one Redis alert stream, as replicas in production share them.
A subscriber follows WatchAlerts through the gateway with the SDK's resuming follower
while alerts are raised steadily, one a breach, through the gateway too. Midway the
controller rolls maintenance out to green: the old color is drained and stopped, which
ends the subscriber's stream; it must reconnect through Envoy, now to green, and resume
after the last alert it saw, so it receives every alert exactly once and in order.

Envoy counts the open subscription in flight like any call; the drain tells it from a
call the old color must finish by the color's own per-method metrics
(services/rollout/drain.py), so it ends once no new call arrives, with the subscriber
still connected, and the stop then ends the subscription at once
(services/runtime/interceptors/stopping.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from manufacturing.maintenance.v1 import alert_pb2, sensor_reading_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb
from manufacturing_sdk import MaintenanceClient, ServiceError, follow_alerts
from sqlalchemy.engine import Engine

from services.rollout import processes, xds
from services.rollout.controller import RolloutController
from services.rollout.envoy_admin import EnvoyAdmin
from tests.backends import drop_schemas, unique_name
from tests.gateway.topology import (
    SERVICE_ENVIRON,
    LocalTopology,
    local_topology,
    make_release,
    rollout_options,
)

pytestmark = [pytest.mark.envoy, pytest.mark.postgres]

SERVICE = "maintenance"
# Long enough that a stop waiting it out for the open subscription cannot pass for one
# that ended it at once.
GRACE_PERIOD_S = 20
# Likewise for a drain waiting for the subscription until its timeout.
DRAIN_TIMEOUT_S = 30
RAISE_EVERY_S = 0.1
SENSOR = "temp"
EPOCH_S = 1_767_225_600  # 2026-01-01


def breach(machine: str) -> pb.IngestReadingsRequest:
    reading = sensor_reading_pb2.SensorReading(machine_id=machine, sensor=SENSOR, value=99.0)
    reading.time.FromSeconds(EPOCH_S)
    return pb.IngestReadingsRequest(readings=[reading])


class CountingClient(MaintenanceClient):
    """A MaintenanceClient that remembers where each WatchAlerts call resumed."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.resumed_after: list[str] = []

    def watch_alerts(
        self, request: pb.WatchAlertsRequest, *, timeout_s: float | None = None
    ) -> Iterator[pb.WatchAlertsResponse]:
        self.resumed_after.append(request.resume_after)
        return super().watch_alerts(request, timeout_s=timeout_s)


@dataclass
class Subscriber:
    """Follows every alert from the start of the stream, on a thread of its own."""

    client: CountingClient
    received: list[tuple[str, str]] = field(default_factory=list)  # (machine, cursor)
    error: BaseException | None = None
    closing: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._follow, daemon=True)
        thread.start()
        return thread

    def _follow(self) -> None:
        try:
            for reply in follow_alerts(
                self.client, pb.WatchAlertsRequest(resume_after="0"), give_up_after_s=60
            ):
                self.received.append((reply.alert.machine_id, reply.cursor))
        except ServiceError as error:
            if not self.closing.is_set():  # closing the channel ends the stream too
                self.error = error

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count and time.monotonic() < deadline:
            assert self.error is None, self.error
            time.sleep(0.05)


class Raiser:
    """Raises one alert every RAISE_EVERY_S through the gateway until stopped."""

    def __init__(self, client: MaintenanceClient) -> None:
        self.client = client
        self.raised: list[str] = []
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._raise, daemon=True)

    def _raise(self) -> None:
        number = 0
        while not self.stop.wait(RAISE_EVERY_S):
            machine = f"m-{number:04d}"
            number += 1
            try:
                reply = self.client.ingest_readings([breach(machine)])
            except ServiceError as error:
                self.failures.append(f"{machine}: {error}")
                continue
            if reply.alerts_raised == 1:
                self.raised.append(machine)
            else:
                self.failures.append(f"{machine}: {reply.alerts_raised} alerts raised")

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.raised) < count:
            assert time.monotonic() < deadline and not self.failures, self.failures
            time.sleep(0.05)


@pytest.fixture
def maintenance_stack(
    tmp_path: Path, postgres_url: str, postgres_admin: Engine, redis_url: str
) -> Iterator[LocalTopology]:
    schema = unique_name()
    environ = {
        **SERVICE_ENVIRON,
        "DATABASE_URL": postgres_url,
        "MFG_DATABASE__SCHEMA_NAME": schema,
        "REDIS_URL": redis_url,
        "MFG_SERVER__GRACE_PERIOD_S": str(GRACE_PERIOD_S),
    }
    release = make_release(tmp_path, SERVICE, "0.1.0")
    try:
        with local_topology(tmp_path, SERVICE, "0.1.0", release, environ) as topology:
            yield topology
    finally:
        drop_schemas(postgres_admin, [schema])
        client = redis.Redis.from_url(redis_url)
        try:
            for key in client.scan_iter(match=f"*{schema}*"):
                client.delete(key)
        finally:
            client.close()


def test_subscriber_reconnects_to_the_new_color_and_misses_no_alert(
    maintenance_stack: LocalTopology,
) -> None:
    stack = maintenance_stack
    new_release = make_release(stack.root, SERVICE, "0.2.0")
    rule = alert_pb2.AlertRule(
        kind=alert_pb2.RULE_KIND_THRESHOLD,
        severity=alert_pb2.SEVERITY_P1,
        sensor=SENSOR,
        upper_limit=50.0,
    )
    with (
        MaintenanceClient(stack.target) as raising,
        CountingClient(stack.target) as watching,
    ):
        raising.create_alert_rule(pb.CreateAlertRuleRequest(rule=rule))
        subscriber = Subscriber(watching)
        following = subscriber.start()
        raiser = Raiser(raising)
        raiser.thread.start()
        try:
            raiser.wait_for(10, timeout_s=30)
            subscriber.wait_for(10, timeout_s=30)
            assert watching.resumed_after == ["0"]  # one stream so far

            record = RolloutController(stack.data_dir, echo=print).run(
                SERVICE,
                "0.2.0",
                rollout_options(
                    "blue-green",
                    drain_timeout_s=DRAIN_TIMEOUT_S,
                    stop_timeout_s=GRACE_PERIOD_S + 10,
                ),
                new_release,
            )
            raised_by_the_switch = len(raiser.raised)
            # Alerts raised after the old color stopped reach the subscriber through green.
            raiser.wait_for(raised_by_the_switch + 20, timeout_s=30)
        finally:
            raiser.stop.set()
            raiser.thread.join(timeout=10)
        subscriber.wait_for(len(raiser.raised), timeout_s=30)
        time.sleep(1.0)  # a duplicate, late, would show here
        admin = EnvoyAdmin(stack.envoy.admin_url)
        streams_on = {
            color: admin.upstream_requests(xds.cluster_name(SERVICE, color))[0]
            for color in ("blue", "green")
        }
        subscriber.closing.set()
    following.join(timeout=10)

    assert record["outcome"] == "completed", record
    events = record["events"]
    (drain,) = [i for i, e in enumerate(events) if e["event"] in ("drained", "drain timed out")]
    # Drained, not timed out, with the subscriber still connected to the old color: its
    # open stream held nothing.
    assert events[drain]["event"] == "drained", events
    assert (events[drain]["held"], events[drain]["open_subscriptions"]) == (0, 1), events
    assert events[drain - 1]["event"] == "step passed", events  # the drain began there
    assert events[drain]["t"] - events[drain - 1]["t"] < DRAIN_TIMEOUT_S / 3, events
    (stopped,) = [i for i, e in enumerate(events) if e["event"] == "stopped"]
    assert (events[stopped]["color"], events[stopped]["graceful"]) == ("blue", True), events
    # SIGTERM ended the open subscription at once instead of holding the stop for the
    # grace period (the runtime's EndStreamsOnStopInterceptor).
    assert events[stopped]["t"] - events[stopped - 1]["t"] < GRACE_PERIOD_S / 2, events
    state = stack.store.load().service(SERVICE)
    assert (state.live, state.colors["green"].version, state.colors["blue"].pids) == (
        "green",
        "0.2.0",
        [],
    )
    assert all(processes.alive(pid) for pid in state.colors["green"].pids)

    assert not raiser.failures, raiser.failures
    assert subscriber.error is None, subscriber.error
    machines = [machine for machine, _ in subscriber.received]
    assert machines == raiser.raised  # every alert, once, in the order raised
    # The subscriber reconnected, resuming each time after the last alert it had seen.
    cursors = [cursor for _, cursor in subscriber.received]
    assert len(watching.resumed_after) >= 2, watching.resumed_after
    assert all(cursor in cursors for cursor in watching.resumed_after[1:])
    # Its stream now lives on green, the only color left.
    assert streams_on == {"blue": 0, "green": 1}, streams_on
