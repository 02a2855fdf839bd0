"""An operation reported late must still be running (or not started) at the current time.

Lengthening one that is over would overlap work that followed it and stays put.
"""

from __future__ import annotations

import grpc
import pytest
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from tests.errors_support import field_violations
from tests.scheduling.test_maintenance_awareness import shop
from tests.scheduling.test_maintenance_reschedule import first_on, late
from tests.scheduling.test_rpcs import assert_repair, seconds, solved


def test_an_operation_over_before_now_cannot_run_late(shared_scheduling_stub):
    original = solved(shared_scheduling_stub, shop(), 1)
    over = first_on(original, "lathe")
    with pytest.raises(grpc.RpcError) as caught:
        shared_scheduling_stub.Reschedule(
            pb.RescheduleRequest(
                schedule_id=original.id,
                disruptions=[late(over, 1)],
                current_time=over.end + 1,
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "disruptions[0].operation_late.operation" in field_violations(caught.value)
    # Ending just now, it may still run late: what follows has not started.
    repaired = shared_scheduling_stub.Reschedule(
        pb.RescheduleRequest(
            schedule_id=original.id,
            disruptions=[late(over, 1)],
            current_time=over.end,
            time_limit=seconds(1),
        )
    ).schedule
    assert_repair(original, repaired, over.end)
    key = (over.job_id, over.operation_id)
    [longer] = [o for o in repaired.operations if (o.job_id, o.operation_id) == key]
    assert (longer.machine_id, longer.start, longer.end) == ("lathe", over.start, over.end + 1)
