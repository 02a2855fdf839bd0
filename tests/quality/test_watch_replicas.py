"""WatchViolations across replicas: two quality servers on one database and one real
Redis; a watcher on one replica sees violations recorded through the other."""

from __future__ import annotations

import queue

import pytest
import redis
from manufacturing.quality.v1 import control_chart_pb2 as cc
from manufacturing.quality.v1 import quality_service_pb2 as pb
from manufacturing.quality.v1 import quality_service_pb2_grpc

from services.quality.app import measurement_feed_key
from tests.harness import StreamReader, channel_to, serve, settings_for
from tests.quality.test_spc_service import variables

pytestmark = pytest.mark.redis
NAME = "line-2/bore/depth"


def watch(
    stub: quality_service_pb2_grpc.QualityServiceStub,
) -> StreamReader[pb.WatchViolationsResponse]:
    """WatchViolations of NAME against frozen limits, read on a thread into a queue."""
    return StreamReader(
        stub.WatchViolations(
            pb.WatchViolationsRequest(
                characteristic=NAME,
                chart_type=cc.CHART_TYPE_I_MR,
                rules=cc.RULE_SET_WESTERN_ELECTRIC,
                frozen_limits=cc.FrozenLimits(center=10.0, sigma=0.1),
            ),
            timeout=30,
        )
    )


def test_a_violation_recorded_through_one_replica_reaches_a_watcher_on_the_other(
    tmp_path, database_environ, redis_url
):
    settings = settings_for("quality", tmp_path, REDIS_URL=redis_url, **database_environ)
    try:
        with (
            serve(settings) as replica_a,
            serve(settings) as replica_b,
            channel_to(replica_a.port) as channel_a,
            channel_to(replica_b.port) as channel_b,
        ):
            writer = quality_service_pb2_grpc.QualityServiceStub(channel_a)
            watcher = watch(quality_service_pb2_grpc.QualityServiceStub(channel_b))
            try:
                writer.RecordMeasurements(
                    pb.RecordMeasurementsRequest(
                        characteristic=NAME, subgroups=variables([10.0], [10.1])
                    )
                )
                first = None
                # The watcher subscribes asynchronously: record a far-out point until one
                # lands after its subscription and comes back through the other replica.
                for _attempt in range(20):
                    writer.RecordMeasurements(
                        pb.RecordMeasurementsRequest(
                            characteristic=NAME, subgroups=variables([10.6])
                        )
                    )
                    try:
                        (first,) = watcher.take(1, timeout_s=0.5)
                        break
                    except queue.Empty:
                        continue
            finally:
                watcher.close()
    finally:
        redis.Redis.from_url(redis_url).delete(measurement_feed_key(settings))
    assert first is not None, "no violation reached the other replica"
    assert first.violation.rule == "we_1"  # 10.6 is 6 sigma above the frozen centre
    assert first.sequence >= 3  # one of the far-out points, never the steady ones
