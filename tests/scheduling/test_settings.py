"""The solver's settings come from the layered configuration (config/*.yaml, MFG_*)."""

from __future__ import annotations

import os
import time

import grpc
import pytest
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb
from manufacturing.scheduling.v1 import scheduling_service_pb2_grpc

from services.runtime.config import ConfigError, load_settings
from services.scheduling.app import solver_settings
from services.scheduling.convert import problem_to_proto
from services.scheduling.domain.orlib import parse_orlib
from services.scheduling.servicer import SolverSettings
from tests.errors_support import field_violations
from tests.harness import channel_to, serve, settings_for
from tests.shared_data import shared_data


def test_defaults_are_every_cpu_up_to_eight_workers_and_ten_seconds():
    settings = load_settings("scheduling", environ={})
    assert solver_settings(settings.scheduling) == SolverSettings(
        workers=min(8, os.cpu_count() or 1), default_time_limit_s=10.0
    )


def test_environment_overrides_the_yaml_layers():
    settings = load_settings(
        "scheduling",
        environ={
            "MFG_SCHEDULING__SOLVER_WORKERS": "3",
            "MFG_SCHEDULING__DEFAULT_TIME_LIMIT_S": "2.5",
        },
    )
    assert solver_settings(settings.scheduling) == SolverSettings(3, 2.5)


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("MFG_SCHEDULING__SOLVER_WORKERS", "-1", "scheduling.solver_workers"),
        ("MFG_SCHEDULING__SOLVER_WORKERS", "many", "scheduling.solver_workers"),
        ("MFG_SCHEDULING__DEFAULT_TIME_LIMIT_S", "0", "scheduling.default_time_limit_s"),
        ("MFG_SCHEDULING__DEFAULT_TIME_LIMIT_S", "7200", "scheduling.default_time_limit_s"),
        ("MFG_SCHEDULING__MAX_OPERATIONS", "0", "scheduling.max_operations"),
    ],
)
def test_bad_values_fail_at_start_naming_the_key(variable, value, key):
    with pytest.raises(ConfigError, match=key):
        load_settings("scheduling", environ={variable: value})


def test_a_problem_above_the_configured_size_is_refused_naming_the_field(tmp_path):
    settings = settings_for("scheduling", tmp_path, MFG_SCHEDULING__MAX_OPERATIONS="30")
    problem = problem_to_proto(parse_orlib((shared_data("jssp") / "ft06").read_text()))
    with serve(settings) as service, channel_to(service.port) as channel:
        stub = scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
        calls = (
            lambda: stub.Solve(pb.SolveRequest(problem=problem), timeout=10),
            lambda: stub.Validate(pb.ValidateRequest(problem=problem), timeout=10),
        )
        for call in calls:
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "at most 30 operations" in field_violations(caught.value)["problem.jobs"]
        del problem.jobs[1:]  # 6 operations: within the limit
        assert stub.Solve(pb.SolveRequest(problem=problem), timeout=10).schedule.operations


def test_a_solve_without_a_time_limit_keeps_to_the_configured_default(tmp_path):
    settings = settings_for("scheduling", tmp_path, MFG_SCHEDULING__DEFAULT_TIME_LIMIT_S="0.5")
    problem = problem_to_proto(parse_orlib((shared_data("jssp") / "la29").read_text()))
    with serve(settings) as service, channel_to(service.port) as channel:
        stub = scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
        started = time.monotonic()
        schedule = stub.Solve(pb.SolveRequest(problem=problem)).schedule
    assert time.monotonic() - started < 0.5 + 0.5 + 0.5  # default + allowance + transport
    assert schedule.wall_time.ToTimedelta().total_seconds() <= 1.0
    assert schedule.operations
