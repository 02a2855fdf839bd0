"""Raising alerts (stored once, then published) and watching the alert stream."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from manufacturing.maintenance.v1 import alert_pb2
from prometheus_client import Counter

from services.maintenance.alert_stream import AlertStream
from services.maintenance.convert import alert_to_proto
from services.maintenance.domain.alerts import Alert, Breach, Rule, RuleKind
from services.maintenance.persistence import AlertRepository
from services.runtime.errors import ServiceError

logger = logging.getLogger(__name__)

AlertScope = Callable[[], AbstractContextManager[AlertRepository]]
# How long one read of the stream may block; a handler checks its client between reads.
WATCH_SLICE_S = 1.0


class AlertCenter:
    def __init__(
        self,
        *,
        alerts: AlertScope,
        stream: AlertStream,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        raised: Counter | None = None,
    ) -> None:
        self._alerts = alerts
        self._raised = raised
        self._stream = stream
        self._clock = clock
        self._new_id = new_id

    def rules(self, machine_id: str = "", kind: RuleKind | None = None) -> list[Rule]:
        with self._alerts() as repository:
            return repository.rules(machine_id, kind)

    def raise_alerts(self, breaches: Sequence[Breach]) -> list[Alert]:
        """Store an alert per breach unless one is open for its rule and machine, commit,
        then publish the stored ones. Returns the alerts newly raised."""
        if not breaches:
            return []
        now = self._clock()
        raised = []
        with self._alerts() as repository:
            for breach in breaches:
                alert = Alert(
                    id=self._new_id(),
                    rule_id=breach.rule.id,
                    machine_id=breach.machine_id,
                    kind=breach.rule.kind,
                    severity=breach.rule.severity,
                    message=breach.message,
                    sensor=breach.sensor,
                    value=breach.value,
                    raised_time=now,
                )
                if repository.add_if_none_open(alert):
                    raised.append(alert)
        for alert in raised:
            if self._raised is not None:
                self._raised.labels(alert.severity.name).inc()
            try:
                self._stream.publish(alert_to_proto(alert).SerializeToString())
            except ServiceError:
                # Stored and visible through GetMachineHealth; subscribers miss it.
                logger.exception("alert %s stored but not published", alert.id)
        return raised

    def watch(
        self,
        *,
        after: str,
        machine_ids: Collection[str],
        severities: Collection[int],
        active: Callable[[], bool],
    ) -> Iterator[tuple[str, alert_pb2.Alert]]:
        """Alerts after cursor ``after`` matching the filters, until ``active()`` is False."""
        cursor = after if after else self._stream.tail()
        while active():
            for entry_id, payload in self._stream.read(cursor, WATCH_SLICE_S):
                cursor = entry_id
                alert = alert_pb2.Alert.FromString(payload)
                if machine_ids and alert.machine_id not in machine_ids:
                    continue
                if severities and alert.severity not in severities:
                    continue
                yield entry_id, alert
