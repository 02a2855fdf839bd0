"""Watch a machine's temperature: an alert rule, readings that break it, the alert
followed from the stream (resuming across disconnects), then acknowledged.

    python examples/maintenance_sync.py [localhost:8080] [machine id]

CLI: mfg maintenance ingest examples/readings.csv
     mfg --json maintenance watch --machine press-7 --resume-after 0 --max-alerts 1
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

from manufacturing.maintenance.v1 import alert_pb2, sensor_reading_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb
from manufacturing_sdk import MaintenanceClient, follow_alerts


def temperatures(machine: str, values: list[float]) -> pb.IngestReadingsRequest:
    """One reading a minute, starting at the top of the current hour."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    batch = pb.IngestReadingsRequest()
    for minute, value in enumerate(values):
        reading = sensor_reading_pb2.SensorReading(machine_id=machine, sensor="temp", value=value)
        reading.time.FromDatetime(start + timedelta(minutes=minute))
        batch.readings.append(reading)
    return batch


def main(target: str, machine: str) -> None:
    rule = alert_pb2.AlertRule(
        machine_id=machine,
        kind=alert_pb2.RULE_KIND_THRESHOLD,
        severity=alert_pb2.SEVERITY_P1,
        sensor="temp",
        upper_limit=80.0,
        description="bearing temperature above 80 C",
    )
    with MaintenanceClient(target) as client:
        client.create_alert_rule(pb.CreateAlertRuleRequest(rule=rule))
        ingested = client.ingest_readings([temperatures(machine, [61.0, 64.5, 79.0, 83.5])])
        watch = pb.WatchAlertsRequest(machine_ids=[machine], resume_after="0")
        first = next(follow_alerts(client, watch)).alert
        client.acknowledge_alert(
            pb.AcknowledgeAlertRequest(alert_id=first.id, acknowledged_by="example")
        )
        latest = client.get_latest_readings(pb.GetLatestReadingsRequest(machine_id=machine))
    print(
        json.dumps(
            {
                "stored": ingested.stored_count,
                "alerts_raised": ingested.alerts_raised,
                "alert": {"sensor": first.sensor, "message": first.message},
                "latest": {r.sensor: r.value for r in latest.readings},
            }
        )
    )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(
        arguments[0] if arguments else "localhost:8080",
        arguments[1] if len(arguments) > 1 else "press-7",
    )
