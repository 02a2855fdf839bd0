"""The MaintenanceService: validate the request, call the domain, build the reply."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import grpc
from manufacturing.common.v1 import service_info_pb2
from manufacturing.maintenance.v1 import alert_pb2, maintenance_service_pb2_grpc
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb
from prometheus_client import Counter

from services.maintenance import convert
from services.maintenance.alert_stream import valid_cursor
from services.maintenance.alerting import AlertCenter
from services.maintenance.domain import alerts as rules
from services.maintenance.domain.anomaly import AnomalyModel
from services.maintenance.domain.failure import (
    INPUT_RANGES,
    PRODUCT_TYPES,
    FailureModel,
    MachineSnapshot,
)
from services.maintenance.domain.planning import MachineOutlook, plan_windows
from services.maintenance.domain.readings import (
    MAX_BATCH,
    MAX_ID_LENGTH,
    Reading,
    validate_reading,
)
from services.maintenance.domain.steps import to_steps
from services.maintenance.persistence import AlertRepository, ReadingRepository
from services.maintenance.predictions import RemainingLife, risk_of
from services.maintenance.reading_columns import ReadingColumns, split_valid_columns
from services.runtime import paging
from services.runtime.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Violations,
)
from services.runtime.models import ServedModel

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MaintenanceService"].full_name
MAX_REJECTED_LISTED = 1000
MAX_READINGS_PAGE = 1000
DEFAULT_READINGS_PAGE = 100
# Readings read at once to train or score an anomaly model.
MAX_RANGE_READINGS = 500_000

ReadingScope = Callable[[], AbstractContextManager[ReadingRepository]]
AlertScope = Callable[[], AbstractContextManager[AlertRepository]]


def _machine_id(value: str, violations: Violations, field: str = "machine_id") -> None:
    violations.check(
        0 < len(value) <= MAX_ID_LENGTH, field, f"must be 1 to {MAX_ID_LENGTH} characters"
    )


def _duration(message: object, field: str, violations: Violations) -> timedelta:
    seconds = message.ToTimedelta()  # type: ignore[attr-defined]
    violations.check(seconds > timedelta(0), field, "must be more than 0")
    return seconds  # type: ignore[no-any-return]


class MaintenanceServicer(maintenance_service_pb2_grpc.MaintenanceServiceServicer):
    def __init__(
        self,
        *,
        readings: ReadingScope,
        alert_store: AlertScope,
        alerts: AlertCenter,
        remaining_life: RemainingLife,
        failure: ServedModel[tuple[FailureModel, str]],
        info: Callable[[], service_info_pb2.ServiceInfo],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ingested: Counter | None = None,
    ) -> None:
        self._ingested = ingested
        self._readings = readings
        self._alert_store = alert_store
        self._alerts = alerts
        self._rul = remaining_life
        self._failure = failure
        self._info = info
        self._clock = clock

    def GetServiceInfo(
        self, request: pb.GetServiceInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetServiceInfoResponse:
        return pb.GetServiceInfoResponse(info=self._info())

    # Readings -------------------------------------------------------------------------

    def IngestReadings(
        self, request_iterator: Iterator[pb.IngestReadingsRequest], context: grpc.ServicerContext
    ) -> pb.IngestReadingsResponse:
        reply = pb.IngestReadingsResponse()
        threshold_rules = self._alerts.rules(kind=rules.RuleKind.THRESHOLD)
        # One batch is written (and its alerts raised) while the next is read and checked:
        # one at a time and in order. The reply, the acknowledgement, waits for every commit.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest") as writer:
            writing: Future[pb.IngestReadingsResponse] | None = None
            for batch_index, batch in enumerate(request_iterator):
                if not 0 < len(batch.readings) <= MAX_BATCH:
                    _add_written(reply, writing)
                    # Earlier batches are committed; say so, since no response will follow.
                    raise InvalidArgument(
                        [
                            FieldViolation(
                                "readings",
                                f"a batch holds 1 to {MAX_BATCH} readings; batch {batch_index} "
                                f"holds {len(batch.readings)} ({reply.stored_count} readings "
                                "of earlier batches were stored)",
                            )
                        ]
                    )
                columns = convert.reading_columns_from_proto(batch.readings)
                valid, rejected = split_valid_columns(columns, self._clock())
                reply.rejected_count += len(rejected)
                for rejection in rejected[: MAX_REJECTED_LISTED - len(reply.rejected)]:
                    reply.rejected.add(
                        batch_index=batch_index,
                        reading_index=rejection.index,
                        field=rejection.field,
                        reason=rejection.reason,
                    )
                if not valid:
                    continue
                _add_written(reply, writing)
                writing = writer.submit(self._store, valid, threshold_rules)
            _add_written(reply, writing)
        return reply

    def _store(
        self, batch: ReadingColumns, threshold_rules: list[rules.Rule]
    ) -> pb.IngestReadingsResponse:
        """Commit one batch (its own transaction), then raise the alerts its readings break."""
        with self._readings() as repository:
            result = repository.add_new(batch)
        if self._ingested is not None:
            self._ingested.inc(result.stored)
        breaches = rules.threshold_breaches(
            threshold_rules, batch.readings_of({r.sensor for r in threshold_rules})
        )
        return pb.IngestReadingsResponse(
            stored_count=result.stored,
            duplicate_count=result.duplicates,
            alerts_raised=len(self._alerts.raise_alerts(breaches)),
        )

    def GetLatestReadings(
        self, request: pb.GetLatestReadingsRequest, context: grpc.ServicerContext
    ) -> pb.GetLatestReadingsResponse:
        violations = Violations()
        _machine_id(request.machine_id, violations)
        violations.raise_if_any()
        with self._readings() as repository:
            latest = repository.latest_per_sensor(request.machine_id)
        if not latest:
            raise NotFound(f"machine {request.machine_id!r} has no readings")
        return pb.GetLatestReadingsResponse(readings=[convert.reading_to_proto(r) for r in latest])

    def ListMachines(
        self, request: pb.ListMachinesRequest, context: grpc.ServicerContext
    ) -> pb.ListMachinesResponse:
        size = paging.page_size(request.page_size)
        position = paging.decode_token(request.page_token, {"after"})
        after = None if position is None else str(position["after"])
        with self._readings() as repository:
            machines = repository.list_machines(after=after, limit=size + 1)
        token = (
            paging.encode_token({"after": machines[size - 1].machine_id})
            if len(machines) > size
            else ""
        )
        return pb.ListMachinesResponse(
            machines=[convert.machine_to_proto(m) for m in machines[:size]], next_page_token=token
        )

    def GetReadings(
        self, request: pb.GetReadingsRequest, context: grpc.ServicerContext
    ) -> pb.GetReadingsResponse:
        violations = Violations()
        _machine_id(request.machine_id, violations)
        violations.check(
            0 <= request.page_size <= MAX_READINGS_PAGE,
            "page_size",
            f"must be 0 to {MAX_READINGS_PAGE}",
        )
        start = convert.optional_time(request.start_time, request.HasField("start_time"))
        end = convert.optional_time(request.end_time, request.HasField("end_time"))
        violations.check(
            start is None or end is None or start < end, "end_time", "must be after start_time"
        )
        violations.raise_if_any()
        size = request.page_size or DEFAULT_READINGS_PAGE
        position = paging.decode_token(request.page_token, {"time", "sensor"})
        after = None
        if position is not None:
            try:
                after = (datetime.fromisoformat(str(position["time"])), str(position["sensor"]))
            except ValueError as error:
                raise InvalidArgument(
                    [FieldViolation("page_token", "not a token this service issued")]
                ) from error
        with self._readings() as repository:
            page = repository.page(
                request.machine_id,
                sensors=list(request.sensors),
                start=start,
                end=end,
                after=after,
                limit=size + 1,
            )
        token = ""
        if len(page) > size:
            last = page[size - 1]
            token = paging.encode_token({"time": last.time.isoformat(), "sensor": last.sensor})
        return pb.GetReadingsResponse(
            readings=[convert.reading_to_proto(r) for r in page[:size]], next_page_token=token
        )

    # Predictions ----------------------------------------------------------------------

    def PredictRemainingLife(
        self, request: pb.PredictRemainingLifeRequest, context: grpc.ServicerContext
    ) -> pb.PredictRemainingLifeResponse:
        source = request.WhichOneof("source")
        if source == "machine_id":
            violations = Violations()
            _machine_id(request.machine_id, violations)
            violations.raise_if_any()
            prediction = self._rul.for_machine(request.machine_id, request.model)
            raised = self._alerts.raise_alerts(
                rules.rul_breaches(
                    self._alerts.rules(request.machine_id, rules.RuleKind.RUL_BELOW),
                    request.machine_id,
                    prediction.estimate.rul,
                )
            )
        elif source == "window":
            readings = [convert.reading_from_proto(r) for r in request.window.readings]
            violations = Violations()
            now = self._clock()
            for index, reading in enumerate(readings):
                # The machine id of inline readings is optional.
                checked = reading if reading.machine_id else _with_machine(reading)
                validate_reading(checked, now, violations, f"window.readings[{index}]")
            violations.raise_if_any()
            prediction = self._rul.for_window(
                readings, request.window.cycles_before_window, request.model
            )
            raised = []
        else:
            raise InvalidArgument([FieldViolation("source", "give machine_id or window")])
        return pb.PredictRemainingLifeResponse(
            remaining_life=convert.remaining_life_to_proto(
                prediction.estimate, prediction.model_version
            ),
            alerts=[convert.alert_to_proto(a) for a in raised],
        )

    def PredictFailure(
        self, request: pb.PredictFailureRequest, context: grpc.ServicerContext
    ) -> pb.PredictFailureResponse:
        violations = Violations()
        violations.check(
            len(request.machine_id) <= MAX_ID_LENGTH,
            "machine_id",
            f"at most {MAX_ID_LENGTH} characters",
        )
        violations.check(
            1 <= request.product_type <= len(PRODUCT_TYPES), "product_type", "must be L, M or H"
        )
        for name, (low, high) in INPUT_RANGES.items():
            value = getattr(request, name)
            violations.check(
                math.isfinite(value) and low <= value <= high,
                name,
                f"must be finite and between {low:g} and {high:g}",
            )
        violations.raise_if_any()
        model, version = self._failure.get()
        prediction = model.predict(
            MachineSnapshot(
                product_type=PRODUCT_TYPES[request.product_type - 1],
                air_temperature_k=request.air_temperature_k,
                process_temperature_k=request.process_temperature_k,
                rotational_speed_rpm=request.rotational_speed_rpm,
                torque_nm=request.torque_nm,
                tool_wear_min=request.tool_wear_min,
            )
        )
        raised = []
        if request.machine_id:
            raised = self._alerts.raise_alerts(
                rules.failure_breaches(
                    self._alerts.rules(request.machine_id, rules.RuleKind.FAILURE_PREDICTED),
                    request.machine_id,
                    prediction.failure_probability,
                    prediction.likeliest_mode,
                )
            )
        modes = sorted(prediction.mode_probabilities.items(), key=lambda kv: -kv[1])
        return pb.PredictFailureResponse(
            failure_probability=prediction.failure_probability,
            modes=[pb.FailureModeProbability(mode=m, probability=p) for m, p in modes],
            model_version=f"{self._failure.name}@{version}",
            alerts=[convert.alert_to_proto(a) for a in raised],
        )

    # Anomalies ------------------------------------------------------------------------

    def TrainAnomalyModel(
        self, request: pb.TrainAnomalyModelRequest, context: grpc.ServicerContext
    ) -> pb.TrainAnomalyModelResponse:
        violations = Violations()
        _machine_id(request.machine_id, violations)
        start = convert.optional_time(request.start_time, request.HasField("start_time"))
        end = convert.optional_time(request.end_time, request.HasField("end_time"))
        violations.check(
            start is None or end is None or start < end, "end_time", "must be after start_time"
        )
        violations.raise_if_any()
        with self._readings() as repository:
            sensors = list(request.sensors) or repository.sensors_of(request.machine_id)
            history = repository.page(
                request.machine_id,
                sensors=sensors,
                start=start,
                end=end,
                after=None,
                limit=MAX_RANGE_READINGS,
            )
        if not sensors:
            raise NotFound(f"machine {request.machine_id!r} has no readings")
        steps = to_steps(history, sorted(set(sensors)))
        model = AnomalyModel.fit(steps.sensors, steps.values)
        with self._alert_store() as store:
            store.save_anomaly_model(request.machine_id, model, self._clock())
        return pb.TrainAnomalyModelResponse(
            sensors=list(model.sensors),
            training_steps=model.training_steps,
            threshold=model.threshold,
        )

    def ScoreReadings(
        self, request: pb.ScoreReadingsRequest, context: grpc.ServicerContext
    ) -> pb.ScoreReadingsResponse:
        violations = Violations()
        _machine_id(request.machine_id, violations)
        inline = [convert.reading_from_proto(r) for r in request.readings]
        now = self._clock()
        for index, reading in enumerate(inline):
            checked = reading if reading.machine_id else _with_machine(reading)
            validate_reading(checked, now, violations, f"readings[{index}]")
        start = convert.optional_time(request.start_time, request.HasField("start_time"))
        end = convert.optional_time(request.end_time, request.HasField("end_time"))
        violations.raise_if_any()
        with self._alert_store() as store:
            model = store.anomaly_model(request.machine_id)
        if model is None:
            raise FailedPrecondition(
                f"machine {request.machine_id!r} has no anomaly model; call TrainAnomalyModel"
            )
        if inline:
            readings: list[Reading] = inline
        else:
            with self._readings() as repository:
                readings = repository.page(
                    request.machine_id,
                    sensors=model.sensors,
                    start=start,
                    end=end,
                    after=None,
                    limit=MAX_RANGE_READINGS,
                )
        steps = to_steps(readings, model.sensors)
        if not steps.times:
            if inline:
                raise InvalidArgument(
                    [FieldViolation("readings", f"no time step holds all of {model.sensors}")]
                )
            raise NotFound("no complete time steps in the range")
        scores = model.score(steps.values)
        worst = int(scores.argmax())
        raised = self._alerts.raise_alerts(
            rules.anomaly_breaches(
                self._alerts.rules(request.machine_id, rules.RuleKind.ANOMALY),
                request.machine_id,
                float(scores[worst]),
                model.threshold,
                steps.times[worst],
            )
        )
        return pb.ScoreReadingsResponse(
            scores=[
                pb.StepScore(
                    time=convert.timestamp(t), score=float(s), anomalous=bool(s > model.threshold)
                )
                for t, s in zip(steps.times, scores, strict=True)
            ],
            threshold=model.threshold,
            alerts=[convert.alert_to_proto(a) for a in raised],
        )

    # Alerts ---------------------------------------------------------------------------

    def CreateAlertRule(
        self, request: pb.CreateAlertRuleRequest, context: grpc.ServicerContext
    ) -> pb.CreateAlertRuleResponse:
        rule = convert.rule_from_proto(request.rule)
        violations = Violations()
        rules.validate_rule(rule, violations)
        violations.raise_if_any()
        stored = rules.Rule(**{**rule.__dict__, "id": str(uuid.uuid4())})
        with self._alert_store() as store:
            store.add_rule(stored)
        return pb.CreateAlertRuleResponse(rule=convert.rule_to_proto(stored))

    def ListAlertRules(
        self, request: pb.ListAlertRulesRequest, context: grpc.ServicerContext
    ) -> pb.ListAlertRulesResponse:
        return pb.ListAlertRulesResponse(
            rules=[convert.rule_to_proto(r) for r in self._alerts.rules(request.machine_id)]
        )

    def DeleteAlertRule(
        self, request: pb.DeleteAlertRuleRequest, context: grpc.ServicerContext
    ) -> pb.DeleteAlertRuleResponse:
        with self._alert_store() as store:
            deleted = store.delete_rule(request.id)
        if not deleted:
            raise NotFound(f"no alert rule has id {request.id!r}")
        return pb.DeleteAlertRuleResponse()

    def WatchAlerts(
        self, request: pb.WatchAlertsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchAlertsResponse]:
        violations = Violations()
        violations.check(
            not request.resume_after or valid_cursor(request.resume_after),
            "resume_after",
            "must be a cursor from a previous WatchAlertsResponse, or 0",
        )
        for index, severity in enumerate(request.severities):
            violations.check(
                int(severity) in {int(s) for s in rules.Severity},
                f"severities[{index}]",
                "must be P0, P1 or P2",
            )
        violations.raise_if_any()
        for cursor, alert in self._alerts.watch(
            after=request.resume_after,
            machine_ids=set(request.machine_ids),
            severities={int(s) for s in request.severities},
            active=context.is_active,
        ):
            yield pb.WatchAlertsResponse(alert=alert, cursor=cursor)

    def AcknowledgeAlert(
        self, request: pb.AcknowledgeAlertRequest, context: grpc.ServicerContext
    ) -> pb.AcknowledgeAlertResponse:
        violations = Violations()
        violations.check(0 < len(request.alert_id) <= 36, "alert_id", "must be an alert id")
        violations.check(
            0 < len(request.acknowledged_by) <= MAX_ID_LENGTH,
            "acknowledged_by",
            f"must be 1 to {MAX_ID_LENGTH} characters",
        )
        violations.raise_if_any()
        with self._alert_store() as store:
            alert = store.acknowledge(request.alert_id, request.acknowledged_by, self._clock())
        if alert is None:
            raise NotFound(f"no alert has id {request.alert_id!r}")
        return pb.AcknowledgeAlertResponse(alert=convert.alert_to_proto(alert))

    # Health and planning ----------------------------------------------------------------

    def _health(self, machine_id: str, model: str) -> pb.GetMachineHealthResponse:
        reply = pb.GetMachineHealthResponse(machine_id=machine_id)
        estimate = None
        try:
            prediction = self._rul.for_machine(machine_id, model)
        except FailedPrecondition as error:
            reply.remaining_life_unavailable_reason = str(error)
        else:
            estimate = prediction.estimate
            reply.remaining_life.CopyFrom(
                convert.remaining_life_to_proto(estimate, prediction.model_version)
            )
            self._alerts.raise_alerts(
                rules.rul_breaches(
                    self._alerts.rules(machine_id, rules.RuleKind.RUL_BELOW),
                    machine_id,
                    estimate.rul,
                )
            )
        with self._alert_store() as store:
            open_alerts = store.open_alerts(machine_id)
        reply.open_alerts.extend(convert.alert_to_proto(a) for a in open_alerts)
        reply.risk = risk_of(estimate, open_alerts)
        return reply

    def GetMachineHealth(
        self, request: pb.GetMachineHealthRequest, context: grpc.ServicerContext
    ) -> pb.GetMachineHealthResponse:
        violations = Violations()
        _machine_id(request.machine_id, violations)
        violations.raise_if_any()
        self._rul.model(request.model)
        return self._health(request.machine_id, request.model)

    def PlanMaintenance(
        self, request: pb.PlanMaintenanceRequest, context: grpc.ServicerContext
    ) -> pb.PlanMaintenanceResponse:
        violations = Violations()
        violations.check(
            0 < len(request.machine_ids) <= 500, "machine_ids", "give 1 to 500 machines"
        )
        for index, machine in enumerate(request.machine_ids):
            _machine_id(machine, violations, f"machine_ids[{index}]")
        violations.check(
            len(set(request.machine_ids)) == len(request.machine_ids),
            "machine_ids",
            "must not repeat a machine",
        )
        horizon = _duration(request.horizon, "horizon", violations)
        violations.check(horizon <= timedelta(days=365), "horizon", "at most 365 days")
        cycle = _duration(request.cycle_duration, "cycle_duration", violations)
        window = _duration(request.window_duration, "window_duration", violations)
        violations.check(request.max_parallel >= 0, "max_parallel", "must not be negative")
        violations.raise_if_any()
        self._rul.model(request.model)
        start = convert.optional_time(request.start_time, request.HasField("start_time"))
        start = start or self._clock()
        outlooks, unplanned = [], []
        for machine in request.machine_ids:
            health = self._health(machine, request.model)
            if not health.HasField("remaining_life"):
                unplanned.append(f"{machine}: {health.remaining_life_unavailable_reason}")
                continue
            lower = health.remaining_life.rul_lower_cycles
            # An open P0 alert means now, whatever the model says.
            if any(a.severity == alert_pb2.SEVERITY_P0 for a in health.open_alerts):
                lower = 0.0
            outlooks.append(MachineOutlook(machine, lower, health.risk))
        windows, left = plan_windows(
            outlooks,
            start=start,
            horizon=horizon,
            cycle=cycle,
            window=window,
            max_parallel=request.max_parallel or 1,
        )
        return pb.PlanMaintenanceResponse(
            windows=[
                pb.MaintenanceWindow(
                    machine_id=w.machine_id,
                    start_time=convert.timestamp(w.start),
                    end_time=convert.timestamp(w.end),
                    due_time=convert.timestamp(w.due),
                    risk=w.risk,
                    reason=w.reason,
                )
                for w in windows
            ],
            unplanned=[*left, *unplanned],
        )


def _add_written(
    reply: pb.IngestReadingsResponse, writing: Future[pb.IngestReadingsResponse] | None
) -> None:
    """Wait for the batch being written and count it; its failure fails the call."""
    if writing is not None:
        written = writing.result()
        reply.stored_count += written.stored_count
        reply.duplicate_count += written.duplicate_count
        reply.alerts_raised += written.alerts_raised


def _with_machine(reading: Reading) -> Reading:
    return Reading("inline", reading.sensor, reading.time, reading.value, reading.settings)
