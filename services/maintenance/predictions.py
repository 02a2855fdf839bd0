"""Remaining-life predictions for stored machines and inline windows, and machine health."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np

from services.maintenance.domain.alerts import Alert, Severity
from services.maintenance.domain.readings import Reading
from services.maintenance.domain.rul import RulEstimate, RulModel, WindowTooShort
from services.maintenance.domain.steps import Steps, to_steps
from services.maintenance.persistence import ReadingRepository
from services.maintenance.registry import DEFAULT_RUL_MODEL, ModelRegistry
from services.runtime.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound

ReadingScope = Callable[[], AbstractContextManager[ReadingRepository]]
# A stored machine is predicted from at most this many of its latest time steps.
MAX_HISTORY_STEPS = 2000


@dataclass(frozen=True)
class Prediction:
    estimate: RulEstimate
    model_version: str


def risk_of(estimate: RulEstimate | None, open_alerts: Sequence[Alert]) -> float:
    """1 - health index, raised by open alerts: P0 to at least 0.9, P1 to 0.6."""
    risk = 0.0 if estimate is None else 1.0 - estimate.health_index
    severities = {a.severity for a in open_alerts}
    if Severity.P0 in severities:
        risk = max(risk, 0.9)
    if Severity.P1 in severities:
        risk = max(risk, 0.6)
    return float(min(max(risk, 0.0), 1.0))


class RemainingLife:
    def __init__(self, *, models: ModelRegistry, readings: ReadingScope) -> None:
        self._models = models
        self._readings = readings

    def model(self, name: str, field: str = "model") -> tuple[RulModel, str]:
        name = name or DEFAULT_RUL_MODEL
        found = self._models.rul.get(name)
        if found is None:
            known = ", ".join(sorted(self._models.rul))
            raise InvalidArgument(
                [FieldViolation(field, f"unknown model {name!r}; one of {known}")]
            )
        model, version = found.get()
        return model, f"{name}@{version}"

    def _steps(self, model: RulModel, readings: Sequence[Reading]) -> Steps:
        defaults = model.normaliser.centers[0] * model.normaliser.setting_scale
        return to_steps(readings, model.sensors, model.settings, [float(v) for v in defaults])

    def for_machine(self, machine_id: str, model_name: str, field: str = "model") -> Prediction:
        model, version = self.model(model_name, field)
        with self._readings() as repository:
            history = repository.history(machine_id, model.sensors, last_steps=MAX_HISTORY_STEPS)
            known = bool(history) or repository.has_machine(machine_id)
        if not known:
            raise NotFound(f"machine {machine_id!r} has no readings")
        steps = self._steps(model, history)
        if len(steps.times) < model.min_cycles:
            missing = sorted({s for _, lacking in steps.incomplete for s in lacking})
            lacking = f"; incomplete steps lack {', '.join(missing)}" if missing else ""
            raise FailedPrecondition(
                f"machine {machine_id!r} has {len(steps.times)} complete time steps of the "
                f"sensors {version} needs ({', '.join(model.sensors)}); at least "
                f"{model.min_cycles} are needed{lacking}"
            )
        estimate = model.predict(steps.settings, steps.values)
        return Prediction(estimate, version)

    def for_window(
        self, readings: Sequence[Reading], cycles_before: int, model_name: str
    ) -> Prediction:
        model, version = self.model(model_name)
        if cycles_before < 0:
            raise InvalidArgument(
                [FieldViolation("window.cycles_before_window", "must not be negative")]
            )
        steps = self._steps(model, readings)
        if steps.incomplete:
            time, lacking = steps.incomplete[0]
            raise InvalidArgument(
                [
                    FieldViolation(
                        "window.readings",
                        f"{len(steps.incomplete)} time steps lack sensors the model needs; "
                        f"the first, {time.isoformat()}, lacks {', '.join(lacking)}",
                    )
                ]
            )
        try:
            estimate = model.predict(
                steps.settings, steps.values, first_age=float(cycles_before + 1)
            )
        except WindowTooShort as error:
            raise InvalidArgument([FieldViolation("window.readings", str(error))]) from error
        if not np.isfinite(estimate.rul):
            raise InvalidArgument([FieldViolation("window.readings", "values out of range")])
        return Prediction(estimate, version)
