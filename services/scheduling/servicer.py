"""The SchedulingService: validate the request, call the domain, build the reply."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import grpc
from google.protobuf import duration_pb2
from manufacturing.common.v1 import service_info_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb
from manufacturing.scheduling.v1 import scheduling_service_pb2_grpc
from prometheus_client import Counter

from services.runtime import paging
from services.runtime.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    Violations,
)
from services.runtime.models import ServedModel
from services.scheduling.convert import (
    OBJECTIVE_FROM_PROTO,
    assignments_from_proto,
    disruption_from_proto,
    estimate_to_proto,
    problem_from_proto,
    schedule_to_proto,
    solution_to_proto,
    violation_to_proto,
    weights_from_proto,
)
from services.scheduling.domain.check import check_schedule
from services.scheduling.domain.durations import DurationModel, OperationRecord
from services.scheduling.domain.indexed import Indexed, objective_value
from services.scheduling.domain.model import (
    Objective,
    ObjectiveWeights,
    Problem,
    Schedule,
    Solution,
)
from services.scheduling.domain.reschedule import (
    Disruption,
    RepairPlan,
    RushJob,
    plan_repair,
    validate_disruptions,
)
from services.scheduling.domain.solver import SolveOptions, solve
from services.scheduling.domain.validation import (
    MAX_OPERATIONS,
    validate_problem,
    validate_weights,
)
from services.scheduling.estimation import Estimate, check_record, fill_durations
from services.scheduling.maintenance import (
    Awareness,
    MaintenanceAdvisor,
    Outlook,
    as_machines_down,
    awareness_from_proto,
    forwarded_credentials,
    with_unavailability,
)
from services.scheduling.persistence import ScheduleRepository

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SchedulingService"].full_name
MAX_TIME_LIMIT_S = 3600
MAX_MOVED_WEIGHT = 1_000_000
MAX_DURATION_QUERIES = 10_000
NO_MAINTENANCE = (
    "no maintenance service is configured: scheduled without planned downtime and machine risk"
)

RepositoryScope = Callable[[], AbstractContextManager[ScheduleRepository]]


@dataclass(frozen=True)
class SolverSettings:
    """How the service runs its solver."""

    workers: int = 2
    default_time_limit_s: float = 10.0
    max_operations: int = MAX_OPERATIONS


@dataclass(frozen=True)
class _Job:
    problem: Problem
    objective: Objective
    weights: ObjectiveWeights
    time_limit_s: float
    # Durations the request left out, filled in with the learned model.
    estimates: tuple[Estimate, ...] = ()
    # What the schedule could not take into account, and remarks on what it did.
    warnings: tuple[str, ...] = ()
    remarks: tuple[str, ...] = ()

    @property
    def notes(self) -> tuple[str, ...]:
        """Remarks stored with the schedule on how its input was completed."""
        estimated: tuple[str, ...] = ()
        if self.estimates:
            versions = ", ".join(sorted({e.model_version for e in self.estimates}))
            estimated = (
                f"{len(self.estimates)} duration(s) left out were estimated by the duration "
                f"model {versions}",
            )
        return (*estimated, *self.remarks, *self.warnings)


class SchedulingServicer(scheduling_service_pb2_grpc.SchedulingServiceServicer):
    def __init__(
        self,
        *,
        schedules: RepositoryScope,
        info: Callable[[], service_info_pb2.ServiceInfo],
        solver: SolverSettings | None = None,
        durations: ServedModel[tuple[str, DurationModel]],
        maintenance: MaintenanceAdvisor | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        solved: Counter | None = None,
    ) -> None:
        self._schedules = schedules
        self._durations = durations
        self._maintenance = maintenance
        self._info = info
        self._solver = solver or SolverSettings()
        self._clock = clock
        self._solved = solved

    def GetServiceInfo(
        self, request: pb.GetServiceInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetServiceInfoResponse:
        return pb.GetServiceInfoResponse(info=self._info())

    # -- solving -------------------------------------------------------------------------

    def Solve(self, request: pb.SolveRequest, context: grpc.ServicerContext) -> pb.SolveResponse:
        job = self._solve_job(request, context)
        solution = solve(
            job.problem,
            self._options(job),
            should_stop=lambda: not context.is_active(),
        )
        return pb.SolveResponse(
            schedule=schedule_to_proto(self._store(job, solution)),
            estimated_durations=[estimate_to_proto(e) for e in job.estimates],
            warnings=job.warnings,
        )

    def SolveStream(
        self, request: pb.SolveStreamRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.SolveStreamResponse]:
        job = self._solve_job(request, context)
        stop = threading.Event()
        context.add_callback(stop.set)  # the client cancelled or went away
        updates: queue.Queue[Solution] = queue.Queue()
        result: list[Solution] = []

        failure: list[BaseException] = []

        def work() -> None:
            try:
                result.append(
                    solve(
                        job.problem,
                        self._options(job),
                        on_improvement=updates.put,
                        should_stop=stop.is_set,
                    )
                )
            except BaseException as error:  # handed to the handler thread, raised there
                failure.append(error)
            finally:
                done.set()

        done = threading.Event()
        worker = threading.Thread(target=work, name="solve-stream", daemon=True)
        worker.start()
        try:
            while not (done.is_set() and updates.empty()):
                if stop.is_set() or not context.is_active():
                    stop.set()
                    return
                try:
                    solution = updates.get(timeout=0.05)
                except queue.Empty:
                    continue
                yield pb.SolveStreamResponse(
                    schedule=solution_to_proto(solution, job.objective, job.weights),
                    lower_bound=solution.lower_bound,
                )
            worker.join()
            if failure:
                raise failure[0]
            schedule = self._store(job, result[0])
            yield pb.SolveStreamResponse(
                schedule=schedule_to_proto(schedule),
                lower_bound=result[0].lower_bound,
                final=True,
                estimated_durations=[estimate_to_proto(e) for e in job.estimates],
                warnings=job.warnings,
            )
        finally:
            stop.set()
            worker.join(timeout=5)

    def _solve_job(
        self, request: pb.SolveRequest | pb.SolveStreamRequest, context: grpc.ServicerContext
    ) -> _Job:
        violations = Violations()
        violations.check(request.HasField("problem"), "problem", "is required")
        violations.check(
            request.objective in OBJECTIVE_FROM_PROTO, "objective", "unknown objective"
        )
        limit = self._time_limit(
            request.time_limit if request.HasField("time_limit") else None, violations
        )
        weights = weights_from_proto(request.objective_weights)
        validate_weights(weights, violations, "objective_weights")
        problem = problem_from_proto(request.problem)
        estimates: tuple[Estimate, ...] = ()
        if request.HasField("problem"):
            jobs, estimates = fill_durations(
                problem.jobs,
                request.problem.jobs,
                [f"problem.jobs[{j}]" for j in range(len(problem.jobs))],
                self._durations,
                violations,
            )
            problem = replace(problem, jobs=jobs)
            validate_problem(problem, violations, max_operations=self._solver.max_operations)
        awareness = None
        if request.HasField("maintenance"):
            awareness = awareness_from_proto(
                request.maintenance, self._clock(), violations, "maintenance"
            )
        violations.raise_if_any()
        job = _Job(
            problem,
            OBJECTIVE_FROM_PROTO[request.objective],
            weights,
            self._within_deadline(limit, context),
            estimates,
        )
        return job if awareness is None else self._with_maintenance(job, awareness, context)

    def _with_maintenance(
        self, job: _Job, awareness: Awareness, context: grpc.ServicerContext
    ) -> _Job:
        """``job`` with the maintenance service's downtime, or a warning that it is missing."""
        outlook, left_s = self._ask_maintenance(
            [m.id for m in job.problem.machines],
            awareness,
            Indexed(job.problem).horizon(),
            job.time_limit_s,
            context,
        )
        return replace(
            job,
            problem=with_unavailability(job.problem, outlook.unavailable),
            time_limit_s=left_s,
            warnings=outlook.warnings,
            remarks=outlook.notes,
        )

    def _ask_maintenance(
        self,
        machine_ids: Sequence[str],
        awareness: Awareness,
        horizon: int,
        limit_s: float,
        context: grpc.ServicerContext,
    ) -> tuple[Outlook, float]:
        """The maintenance service's outlook, and what is left of ``limit_s`` after asking."""
        if self._maintenance is None:
            return Outlook({}, warning=NO_MAINTENANCE), limit_s
        asked = time.monotonic()
        outlook = self._maintenance.outlook(
            machine_ids,
            awareness,
            horizon,
            # Asking may take at most half the time; the rest is the solver's.
            within_s=limit_s / 2,
            metadata=forwarded_credentials(context.invocation_metadata()),
        )
        return outlook, max(0.05, limit_s - (time.monotonic() - asked))

    def _time_limit(
        self,
        requested: duration_pb2.Duration | None,
        violations: Violations,
        field: str = "time_limit",
    ) -> float:
        if requested is None:
            return self._solver.default_time_limit_s
        seconds = requested.ToTimedelta().total_seconds()
        violations.check(
            0 < seconds <= MAX_TIME_LIMIT_S,
            field,
            f"must be positive and at most {MAX_TIME_LIMIT_S} s",
        )
        return seconds

    @staticmethod
    def _within_deadline(limit: float, context: grpc.ServicerContext) -> float:
        remaining = context.time_remaining()
        if remaining is None:
            return limit
        # Leave room to store the schedule and send the reply before the deadline.
        return max(0.05, min(limit, remaining * 0.8 - 0.25))

    def _options(self, job: _Job, **extra: object) -> SolveOptions:
        return SolveOptions(
            objective=job.objective,
            weights=job.weights,
            time_limit_s=job.time_limit_s,
            workers=self._solver.workers,
            **extra,  # type: ignore[arg-type]
        )

    def _store(self, job: _Job, solution: Solution, based_on: str = "") -> Schedule:
        schedule = Schedule(
            id=uuid.uuid4().hex,
            created_at=self._clock(),
            objective=job.objective,
            problem=job.problem,
            solution=replace(solution, notes=job.notes + solution.notes),
            weights=job.weights,
            based_on=based_on,
        )
        with self._schedules() as repository:
            repository.add(schedule)
        if self._solved is not None:
            self._solved.labels(solution.status.name).inc()
        return schedule

    # -- repairing and checking -----------------------------------------------------------

    def Reschedule(
        self, request: pb.RescheduleRequest, context: grpc.ServicerContext
    ) -> pb.RescheduleResponse:
        violations = Violations()
        violations.check(
            0 < len(request.schedule_id) <= 64, "schedule_id", "must be 1 to 64 characters"
        )
        limit = self._time_limit(
            request.time_limit if request.HasField("time_limit") else None, violations
        )
        violations.check(
            0 <= request.moved_operation_weight <= MAX_MOVED_WEIGHT,
            "moved_operation_weight",
            f"must be between 0 and {MAX_MOVED_WEIGHT}",
        )
        disruptions: list[Disruption] = []
        estimates: list[Estimate] = []
        for i, message in enumerate(request.disruptions):
            disruption = disruption_from_proto(message)
            if disruption is None:
                violations.add(f"disruptions[{i}]", "names no kind of disruption")
                continue
            if isinstance(disruption, RushJob):
                jobs, found = fill_durations(
                    (disruption.job,),
                    (message.rush_job.job,),
                    (f"disruptions[{i}].rush_job.job",),
                    self._durations,
                    violations,
                )
                disruption = RushJob(jobs[0])
                estimates.extend(found)
            disruptions.append(disruption)
        awareness = None
        if request.HasField("maintenance"):
            awareness = awareness_from_proto(
                request.maintenance,
                self._clock(),
                violations,
                "maintenance",
                # A negative current time is refused with the disruptions.
                now_at=max(0, request.current_time),
            )
        violations.raise_if_any()
        with self._schedules() as repository:
            stored = repository.get(request.schedule_id)
        if stored is None:
            raise NotFound(f"no schedule with id {request.schedule_id!r}")
        validate_disruptions(
            stored.problem,
            stored.solution.assignments,
            disruptions,
            request.current_time,
            violations,
        )
        for i, disruption in enumerate(disruptions):
            if isinstance(disruption, RushJob):
                _validate_rush_job(
                    stored.problem, disruption, f"disruptions[{i}].rush_job.job", violations
                )
        violations.raise_if_any()
        plan = plan_repair(
            stored.problem, stored.solution.assignments, disruptions, request.current_time
        )
        job = _Job(
            plan.problem,
            stored.objective,
            stored.weights,
            self._within_deadline(limit, context),
            tuple(estimates),
        )
        if awareness is not None:
            plan, job = self._repair_with_maintenance(
                stored, disruptions, request.current_time, job, awareness, context
            )
        solution = solve(
            plan.problem,
            self._options(
                job,
                fixed=plan.fixed,
                original=plan.original,
                moved_weight=request.moved_operation_weight or 1,
                not_before=plan.not_before,
            ),
            should_stop=lambda: not context.is_active(),
        )
        solution = replace(solution, notes=solution.notes + plan.notes)
        schedule = self._store(job, solution, based_on=stored.id)
        return pb.RescheduleResponse(
            schedule=schedule_to_proto(schedule),
            estimated_durations=[estimate_to_proto(e) for e in job.estimates],
            warnings=job.warnings,
        )

    def _repair_with_maintenance(
        self,
        stored: Schedule,
        disruptions: list[Disruption],
        now: int,
        job: _Job,
        awareness: Awareness,
        context: grpc.ServicerContext,
    ) -> tuple[RepairPlan, _Job]:
        """The repair with the maintenance service's downtime from ``now`` on as machines
        down (so a running operation ends before its machine stops), or a warning."""
        outlook, left_s = self._ask_maintenance(
            [m.id for m in job.problem.machines],
            awareness,
            # Nothing moved starts before now.
            now + Indexed(job.problem).horizon(),
            job.time_limit_s,
            context,
        )
        plan = plan_repair(
            stored.problem,
            stored.solution.assignments,
            [*disruptions, *as_machines_down(outlook.unavailable)],
            now,
        )
        return plan, replace(
            job,
            problem=plan.problem,
            time_limit_s=left_s,
            warnings=outlook.warnings,
            remarks=outlook.notes,
        )

    def Validate(
        self, request: pb.ValidateRequest, context: grpc.ServicerContext
    ) -> pb.ValidateResponse:
        violations = Violations()
        violations.check(request.HasField("problem"), "problem", "is required")
        violations.check(
            request.objective in OBJECTIVE_FROM_PROTO, "objective", "unknown objective"
        )
        weights = weights_from_proto(request.objective_weights)
        validate_weights(weights, violations, "objective_weights")
        problem = problem_from_proto(request.problem)
        if request.HasField("problem"):
            validate_problem(problem, violations, max_operations=self._solver.max_operations)
        violations.raise_if_any()
        assignments = assignments_from_proto(request.operations)
        found = check_schedule(problem, assignments)
        return pb.ValidateResponse(
            feasible=not found,
            violations=[violation_to_proto(v) for v in found],
            makespan=max((a.end for a in assignments), default=0),
            objective_value=objective_value(
                problem, assignments, OBJECTIVE_FROM_PROTO[request.objective], weights
            ),
        )

    def PredictDurations(
        self, request: pb.PredictDurationsRequest, context: grpc.ServicerContext
    ) -> pb.PredictDurationsResponse:
        violations = Violations()
        violations.check(
            0 < len(request.queries) <= MAX_DURATION_QUERIES,
            "queries",
            f"1 to {MAX_DURATION_QUERIES} queries are accepted",
        )
        records = [
            OperationRecord(q.product, q.machine_id, q.quantity, q.shift) for q in request.queries
        ]
        for i, record in enumerate(records[:MAX_DURATION_QUERIES]):
            check_record(record, f"queries[{i}]", violations)
        violations.raise_if_any()
        version, model = self._durations.get()
        predicted = model.predict(records)
        return pb.PredictDurationsResponse(durations=predicted, model_version=version)

    # -- reading -------------------------------------------------------------------------

    def GetSchedule(
        self, request: pb.GetScheduleRequest, context: grpc.ServicerContext
    ) -> pb.GetScheduleResponse:
        violations = Violations()
        violations.check(0 < len(request.id) <= 64, "id", "must be 1 to 64 characters")
        violations.raise_if_any()
        with self._schedules() as repository:
            schedule = repository.get(request.id)
        if schedule is None:
            raise NotFound(f"no schedule with id {request.id!r}")
        return pb.GetScheduleResponse(schedule=schedule_to_proto(schedule))

    def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: grpc.ServicerContext
    ) -> pb.ListSchedulesResponse:
        size = paging.page_size(request.page_size)
        after = _cursor(paging.decode_token(request.page_token, {"created_at", "id"}))
        with self._schedules() as repository:
            # One extra row tells whether another page follows.
            page = repository.list_newest_first(size + 1, after)
        next_token = ""
        if len(page) > size:
            page = page[:size]
            last = page[-1]
            next_token = paging.encode_token(
                {"created_at": last.created_at.isoformat(), "id": last.id}
            )
        return pb.ListSchedulesResponse(
            schedules=[schedule_to_proto(s, full=False) for s in page],
            next_page_token=next_token,
        )


def _cursor(position: dict[str, object] | None) -> tuple[datetime, str] | None:
    if position is None:
        return None
    created_at, schedule_id = position["created_at"], position["id"]
    try:
        if not isinstance(created_at, str) or not isinstance(schedule_id, str):
            raise ValueError("token fields are not strings")
        return datetime.fromisoformat(created_at), schedule_id
    except ValueError as error:
        raise InvalidArgument(
            [FieldViolation("page_token", "not a token this service issued")]
        ) from error


def _validate_rush_job(problem: Problem, rush: RushJob, path: str, violations: Violations) -> None:
    """Check a rush job as if it were the only job of the stored problem's shop."""
    found = Violations()
    validate_problem(Problem(problem.machines, (rush.job,)), found)
    try:
        found.raise_if_any()
    except InvalidArgument as error:
        for violation in error.violations:
            violations.add(
                violation.field.replace("problem.jobs[0]", path, 1), violation.description
            )
