"""The QualityService: validate the request, call the domain, build the reply."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from datetime import datetime

import grpc
from manufacturing.common.v1 import service_info_pb2
from manufacturing.quality.v1 import control_chart_pb2 as cc
from manufacturing.quality.v1 import inspection_pb2, quality_service_pb2_grpc
from manufacturing.quality.v1 import quality_service_pb2 as pb
from prometheus_client import Counter, Histogram

from services.quality.convert import (
    CHART_TYPES,
    capability_to_proto,
    chart_to_proto,
    error_to_proto,
    inspection_to_proto,
    stored_to_proto,
    study_from_proto,
    subgroup_from_proto,
    version_to_proto,
)
from services.quality.domain.inspection.artifacts import sha256_bytes
from services.quality.domain.inspection.images import decode_gray
from services.quality.domain.inspection.inspector import Inspector
from services.quality.domain.inspection.pipeline import read_ahead
from services.quality.domain.spc.capability import capability, validate_specification
from services.quality.domain.spc.rules import RuleViolation
from services.quality.domain.spc.study import (
    ATTRIBUTES,
    MAX_SUBGROUPS,
    ChartStudy,
    compute,
    validate,
    validate_recorded,
)
from services.quality.feed import MeasurementFeed
from services.quality.inspection_workers import InspectionWorkers, Judged
from services.quality.persistence import MeasurementRepository, StoredSubgroup
from services.quality.registry import ModelRegistry
from services.quality.training import LABEL, MODEL_NAME, train_classifier_version
from services.quality.training import MAX_IMAGES as MAX_TRAINING_IMAGES
from services.runtime.errors import FailedPrecondition, ServiceError, Unavailable, Violations
from services.runtime.interceptors.errors import STATUS_OF

CHARACTERISTIC = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
MAX_RECORD = 1000
WATCH_POLL_S = 0.5  # how often a watching stream checks that its caller is still there
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["QualityService"].full_name


def _code_of(error: ServiceError) -> int:
    for kind, status in STATUS_OF.items():
        if isinstance(error, kind):
            return int(status.value[0])
    return int(grpc.StatusCode.UNKNOWN.value[0])


class QualityServicer(quality_service_pb2_grpc.QualityServiceServicer):
    def __init__(
        self,
        *,
        info: Callable[[], service_info_pb2.ServiceInfo],
        registry: ModelRegistry,
        measurements: Callable[[], AbstractContextManager[MeasurementRepository]],
        clock: Callable[[], datetime],
        feed: MeasurementFeed,
        inspector: Inspector,
        workers: InspectionWorkers,
        max_pixels: int,
        stream_in_flight: int,
        inspected: Counter | None = None,
        inference: Histogram | None = None,
    ) -> None:
        self._info = info
        self._registry = registry
        self._measurements = measurements
        self._clock = clock
        self._feed = feed
        self._inspector = inspector
        self._workers = workers
        self._max_pixels = max_pixels
        self._stream_in_flight = stream_in_flight
        self._inspected = inspected
        self._inference = inference

    def _start_judging(self, image: bytes, model_name: str) -> Future[Judged]:
        """The image on its way to a worker, or a future holding why it cannot be."""
        try:
            violations = Violations()
            violations.check(bool(model_name), "model", "name the model, e.g. neu-surface")
            violations.raise_if_any()
            return self._workers.submit(self._registry.active(model_name), image)
        except ServiceError as error:
            refused: Future[Judged] = Future()
            refused.set_exception(error)
            return refused

    def _judged(self, model_name: str, started: Future[Judged]) -> inspection_pb2.InspectionResult:
        judged = InspectionWorkers.result(started)
        inspection = judged.inspection
        if self._inference is not None:
            self._inference.labels(model_name).observe(inspection.latency_s)
        if self._inspected is not None:
            self._inspected.labels(inspection.verdict.name.lower()).inc()
        return inspection_to_proto(
            inspection, latency_s=judged.seconds, width=judged.width, height=judged.height
        )

    def Inspect(
        self, request: pb.InspectRequest, context: grpc.ServicerContext
    ) -> pb.InspectResponse:
        started = self._start_judging(request.image, request.model)
        return pb.InspectResponse(result=self._judged(request.model, started))

    def InspectStream(
        self, request_iterator: Iterator[pb.InspectStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.InspectStreamResponse]:
        started = (
            (sequence, request, self._start_judging(request.image, request.model))
            for sequence, request in enumerate(request_iterator)
        )
        for sequence, request, judging in read_ahead(started, in_flight=self._stream_in_flight):
            try:
                result = self._judged(request.model, judging)
            except ServiceError as error:
                yield pb.InspectStreamResponse(
                    frame_id=request.frame_id,
                    sequence=sequence,
                    error=error_to_proto(error, _code_of(error)),
                )
            else:
                yield pb.InspectStreamResponse(
                    frame_id=request.frame_id, sequence=sequence, result=result
                )

    def TrainInspectionModel(
        self,
        request_iterator: Iterator[pb.TrainInspectionModelRequest],
        context: grpc.ServicerContext,
    ) -> pb.TrainInspectionModelResponse:
        name = ""
        features, labels, hashes = [], [], []
        violations = Violations()
        for index, request in enumerate(request_iterator):
            path = f"requests[{index}]"
            if index == 0:
                name = request.model
                violations.check(
                    MODEL_NAME.fullmatch(name) is not None,
                    f"{path}.model",
                    "name the model: lowercase letters, digits and -",
                )
                violations.raise_if_any()
            else:
                violations.check(
                    request.model in ("", name), f"{path}.model", f"must stay {name!r}"
                )
            violations.check(
                index < MAX_TRAINING_IMAGES,
                "requests",
                f"at most {MAX_TRAINING_IMAGES} images per training run",
            )
            violations.check(
                LABEL.fullmatch(request.label) is not None,
                f"{path}.label",
                "1 to 64 letters, digits and _ . -",
            )
            violations.raise_if_any()
            pixels = decode_gray(request.image, f"{path}.image", max_pixels=self._max_pixels)
            features.append(self._inspector.features(pixels))
            labels.append(request.label)
            hashes.append(sha256_bytes(request.image))
            if not context.is_active():
                raise Unavailable("the caller went away; training stopped")
        violations.check(bool(labels), "requests", "send labelled images")
        violations.raise_if_any()
        existing = {v.manifest.kind for v in self._registry.versions() if v.manifest.name == name}
        if "anomaly" in existing:
            raise FailedPrecondition(f"{name!r} is an anomaly model; train it with the CLI")
        result = train_classifier_version(
            name=name,
            features=features,
            labels=labels,
            image_hashes=hashes,
            out=self._registry.trained_root,
            now=self._clock(),
        )
        info = next(
            v
            for v in self._registry.versions(name)
            if v.manifest.version == result.manifest.version
        )
        return pb.TrainInspectionModelResponse(
            model=version_to_proto(info),
            confusion_matrix=pb.ConfusionMatrix(
                labels=list(result.labels),
                rows=[pb.ConfusionRow(counts=row) for row in result.confusion],
            ),
        )

    def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[version_to_proto(v) for v in self._registry.versions(request.name)]
        )

    def PromoteModel(
        self, request: pb.PromoteModelRequest, context: grpc.ServicerContext
    ) -> pb.PromoteModelResponse:
        violations = Violations()
        violations.check(bool(request.name), "name", "name the model")
        violations.check(bool(request.version), "version", "name the version to promote")
        violations.raise_if_any()
        info = self._registry.promote(request.name, request.version)
        return pb.PromoteModelResponse(model=version_to_proto(info))

    def RollbackModel(
        self, request: pb.RollbackModelRequest, context: grpc.ServicerContext
    ) -> pb.RollbackModelResponse:
        violations = Violations()
        violations.check(bool(request.name), "name", "name the model")
        violations.raise_if_any()
        return pb.RollbackModelResponse(
            model=version_to_proto(self._registry.rollback(request.name))
        )

    def GetServiceInfo(
        self, request: pb.GetServiceInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetServiceInfoResponse:
        return pb.GetServiceInfoResponse(info=self._info())

    def ComputeControlChart(
        self, request: pb.ComputeControlChartRequest, context: grpc.ServicerContext
    ) -> pb.ComputeControlChartResponse:
        violations = Violations()
        chart_type = CHART_TYPES.get(request.chart_type)
        violations.check(chart_type is not None, "chart_type", "choose a chart type")
        violations.raise_if_any()
        assert chart_type is not None
        if request.characteristic and not request.subgroups:
            violations.check(
                CHARACTERISTIC.fullmatch(request.characteristic) is not None,
                "characteristic",
                "1 to 128 letters, digits and . _ - / :",
            )
            violations.raise_if_any()
            with self._measurements() as repository:
                stored = repository.latest(request.characteristic, MAX_SUBGROUPS)
            merged = pb.ComputeControlChartRequest()
            merged.CopyFrom(request)
            merged.subgroups.extend(stored_to_proto(s) for s in stored)
            request = merged
        study = study_from_proto(request, chart_type)
        validate(study, violations)
        violations.raise_if_any()
        chart, found = compute(study)
        return pb.ComputeControlChartResponse(
            chart=chart_to_proto(chart, found, request.chart_type, len(study.values[0]))
        )

    def RecordMeasurements(
        self, request: pb.RecordMeasurementsRequest, context: grpc.ServicerContext
    ) -> pb.RecordMeasurementsResponse:
        violations = Violations()
        violations.check(
            CHARACTERISTIC.fullmatch(request.characteristic) is not None,
            "characteristic",
            "1 to 128 letters, digits and . _ - / :",
        )
        violations.check(
            1 <= len(request.subgroups) <= MAX_RECORD,
            "subgroups",
            f"send 1 to {MAX_RECORD} subgroups, got {len(request.subgroups)}",
        )
        subgroups = [subgroup_from_proto(s) for s in request.subgroups]
        validate_recorded(subgroups, violations)
        violations.raise_if_any()
        with self._measurements() as repository:
            total = repository.append(request.characteristic, subgroups, now=self._clock())
        self._feed.publish(request.characteristic, total)
        return pb.RecordMeasurementsResponse(recorded=len(subgroups), total=total)

    def WatchViolations(
        self, request: pb.WatchViolationsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchViolationsResponse]:
        violations = Violations()
        violations.check(
            CHARACTERISTIC.fullmatch(request.characteristic) is not None,
            "characteristic",
            "1 to 128 letters, digits and . _ - / :",
        )
        chart_type = CHART_TYPES.get(request.chart_type)
        violations.check(
            chart_type is not None and chart_type not in ATTRIBUTES,
            "chart_type",
            "choose a variables chart (X-bar/R, X-bar/S, I-MR, EWMA, CUSUM)",
        )
        if request.HasField("frozen_limits"):
            limits = request.frozen_limits
            violations.check(math.isfinite(limits.center), "frozen_limits.center", "must be finite")
            violations.check(
                math.isfinite(limits.sigma) and limits.sigma > 0,
                "frozen_limits.sigma",
                "must be a positive standard deviation",
            )
        violations.raise_if_any()
        assert chart_type is not None
        template = pb.ComputeControlChartRequest(chart_type=request.chart_type, rules=request.rules)
        if request.HasField("frozen_limits"):
            template.frozen_limits.CopyFrom(request.frozen_limits)
        subscription = self._feed.subscribe(request.characteristic)  # before the count
        with self._measurements() as repository:
            latest = repository.latest(request.characteristic, 1)
        seen = latest[-1].sequence if latest else 0
        while context.is_active():
            total = subscription.wait(seen, WATCH_POLL_S)
            if total <= seen:
                continue
            with self._measurements() as repository:
                stored = repository.latest(request.characteristic, MAX_SUBGROUPS)
            yield from self._new_violations(template, chart_type, stored, seen)
            seen = total

    def _new_violations(
        self,
        template: pb.ComputeControlChartRequest,
        chart_type: str,
        stored: list[StoredSubgroup],
        seen: int,
    ) -> Iterator[pb.WatchViolationsResponse]:
        request = pb.ComputeControlChartRequest()
        request.CopyFrom(template)
        request.subgroups.extend(stored_to_proto(s) for s in stored)
        study = study_from_proto(request, chart_type)
        check = Violations()
        validate(study, check)
        try:
            check.raise_if_any()
        except ServiceError:
            return  # e.g. fewer than two subgroups yet, or mixed sizes: nothing to judge
        chart, found = compute(study)
        statistic = chart.series[0].statistic
        if not request.rules:
            found = [
                RuleViolation("beyond_limits", "point beyond the control limits", (i,), i)
                for i in chart.series[0].out_of_control()
            ]
        for violation in found:
            sequence = stored[violation.at].sequence
            if sequence > seen:
                yield pb.WatchViolationsResponse(
                    violation=cc.RuleViolation(
                        rule=violation.rule,
                        description=violation.description,
                        statistic=statistic,
                        points=list(violation.points),
                        at=violation.at,
                    ),
                    sequence=sequence,
                )

    def ComputeCapability(
        self, request: pb.ComputeCapabilityRequest, context: grpc.ServicerContext
    ) -> pb.ComputeCapabilityResponse:
        violations = Violations()
        subgroups = [list(s.values) for s in request.subgroups]
        confidence = request.confidence or 0.95
        validate(
            ChartStudy("xbar_r" if subgroups and len(subgroups[0]) > 1 else "i_mr", subgroups),
            violations,
        )
        validate_specification(
            request.lower_spec_limit, request.upper_spec_limit, confidence, violations
        )
        violations.raise_if_any()
        result = capability(
            subgroups, request.lower_spec_limit, request.upper_spec_limit, confidence=confidence
        )
        return pb.ComputeCapabilityResponse(capability=capability_to_proto(result))
