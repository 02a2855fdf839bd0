"""Domain objects <-> protobuf messages for the quality service."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import duration_pb2, timestamp_pb2
from manufacturing.quality.v1 import inspection_pb2

from services.quality.domain.inspection.inspector import Inspection, Verdict
from services.quality.registry import VersionInfo
from services.runtime.errors import InvalidArgument, ServiceError

VERDICTS = {
    Verdict.GOOD: inspection_pb2.VERDICT_GOOD,
    Verdict.DEFECTIVE: inspection_pb2.VERDICT_DEFECTIVE,
}
KINDS = {
    "classifier": inspection_pb2.MODEL_KIND_CLASSIFIER,
    "anomaly": inspection_pb2.MODEL_KIND_ANOMALY,
}


def inspection_to_proto(
    inspection: Inspection, *, latency_s: float, width: int, height: int
) -> inspection_pb2.InspectionResult:
    latency = duration_pb2.Duration()
    latency.FromNanoseconds(int(latency_s * 1e9))
    ranked = sorted(inspection.probabilities.items(), key=lambda item: -item[1])
    return inspection_pb2.InspectionResult(
        verdict=VERDICTS[inspection.verdict],
        defect_class=inspection.defect_class,
        probabilities=[
            inspection_pb2.ClassProbability(label=label, probability=p) for label, p in ranked
        ],
        regions=[
            inspection_pb2.BoundingBox(
                x_min=b.x_min, y_min=b.y_min, x_max=b.x_max, y_max=b.y_max, score=b.score
            )
            for b in inspection.boxes
        ],
        anomaly_score=inspection.anomaly_score,
        anomaly_threshold=inspection.threshold,
        model_name=inspection.model_name,
        model_version=inspection.model_version,
        latency=latency,
        width=width,
        height=height,
    )


def error_to_proto(error: ServiceError, code: int) -> inspection_pb2.InspectionError:
    fields = error.violations if isinstance(error, InvalidArgument) else []
    return inspection_pb2.InspectionError(
        code=code,
        message=str(error),
        field_errors=[
            inspection_pb2.FieldError(field=v.field, description=v.description) for v in fields
        ],
    )


def version_to_proto(info: VersionInfo) -> inspection_pb2.ModelVersion:
    manifest = info.manifest
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(datetime.fromisoformat(manifest.created))
    metrics = {
        key: float(value)
        for key, value in manifest.metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    return inspection_pb2.ModelVersion(
        name=manifest.name,
        version=manifest.version,
        kind=KINDS.get(manifest.kind, inspection_pb2.MODEL_KIND_UNSPECIFIED),
        active=info.active,
        create_time=created,
        classes=list(manifest.classes),
        data_fingerprint=manifest.data_fingerprint,
        sha256=next(iter(manifest.files.values()), ""),
        metrics=metrics,
    )
