"""Learned processing times: how long an operation takes, from past operation records.

The model is a ridge regression (scikit-learn) of log(duration) on one-hot product,
machine, shift and product-machine pair, plus log(quantity) per machine: multiplicative
effects, which is how processing times behave (a slow machine is slow for every
product; twice the quantity takes about twice as long after the setup). Its parameters
are plain arrays plus vocabularies, so an artifact holds no pickled code.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import Ridge

FIELDS = ("product", "machine_id", "shift")


@dataclass(frozen=True)
class OperationRecord:
    product: str
    machine_id: str
    quantity: int
    shift: str
    duration: float = 0.0  # the measured processing time (training records only)


def synthetic_history(count: int, seed: int = 7) -> list[OperationRecord]:
    """Plausible shop-floor records with known structure (no public data set has them).

    Each product has a base time per unit and a setup; each machine a speed factor;
    night shifts run 8% slower; noise is multiplicative (lognormal, sigma 0.12).
    """
    rng = random.Random(seed)  # noqa: S311 (data generation, not secrets)
    products = {f"P{i:02d}": (rng.uniform(0.5, 4.0), rng.uniform(5, 40)) for i in range(12)}
    machines = {f"m{i}": rng.uniform(0.7, 1.4) for i in range(8)}
    shifts = {"day": 1.0, "evening": 1.03, "night": 1.08}
    records = []
    for _ in range(count):
        product = rng.choice(sorted(products))
        machine = rng.choice(sorted(machines))
        shift = rng.choice(sorted(shifts))
        quantity = rng.randint(1, 200)
        per_unit, setup = products[product]
        mean = (setup + per_unit * quantity) * machines[machine] * shifts[shift]
        duration = mean * math.exp(rng.gauss(0, 0.12))
        records.append(OperationRecord(product, machine, quantity, shift, round(duration, 2)))
    return records


def fingerprint(records: Sequence[OperationRecord]) -> str:
    digest = hashlib.sha256()
    for r in records:
        digest.update(f"{r.product},{r.machine_id},{r.quantity},{r.shift},{r.duration}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class DurationModel:
    vocab: dict[str, list[str]]  # field -> known values; also "pair" and "machine_q"
    coef: NDArray[np.float64]
    intercept: float

    def _design(self, queries: Sequence[OperationRecord]) -> NDArray[np.float64]:
        return _design(queries, self.vocab)

    def predict(self, queries: Sequence[OperationRecord]) -> list[float]:
        if not queries:
            return []
        log_duration = self._design(queries) @ self.coef + self.intercept
        return [float(v) for v in np.exp(log_duration)]

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        return {"coef": self.coef, "intercept": np.array([self.intercept])}


def _columns(vocab: dict[str, list[str]]) -> dict[tuple[str, str], int]:
    columns: dict[tuple[str, str], int] = {}
    for group in (*FIELDS, "pair", "machine_q"):
        for value in vocab[group]:
            columns[(group, value)] = len(columns)
    columns[("log_quantity", "")] = len(columns)
    return columns


def _design(queries: Sequence[OperationRecord], vocab: dict[str, list[str]]) -> NDArray[np.float64]:
    columns = _columns(vocab)
    design = np.zeros((len(queries), len(columns)))
    for i, q in enumerate(queries):
        log_q = math.log(max(1, q.quantity))
        for group, value, weight in (
            ("product", q.product, 1.0),
            ("machine_id", q.machine_id, 1.0),
            ("shift", q.shift, 1.0),
            ("pair", f"{q.product}|{q.machine_id}", 1.0),
            ("machine_q", q.machine_id, log_q),
            ("log_quantity", "", log_q),
        ):
            column = columns.get((group, value))
            if column is not None:  # values never seen in training contribute nothing
                design[i, column] = weight
    return design


def fit(records: Sequence[OperationRecord], alpha: float = 1.0) -> DurationModel:
    vocab = {
        "product": sorted({r.product for r in records}),
        "machine_id": sorted({r.machine_id for r in records}),
        "shift": sorted({r.shift for r in records}),
        "pair": sorted({f"{r.product}|{r.machine_id}" for r in records}),
        "machine_q": sorted({r.machine_id for r in records}),
    }
    target = np.log(np.array([max(r.duration, 1e-3) for r in records]))
    ridge = Ridge(alpha=alpha).fit(_design(records, vocab), target)
    return DurationModel(vocab, np.asarray(ridge.coef_, dtype=np.float64), float(ridge.intercept_))


def evaluate(model: DurationModel, records: Sequence[OperationRecord]) -> dict[str, float]:
    predicted = np.array(model.predict(records))
    actual = np.array([r.duration for r in records])
    error = np.abs(predicted - actual)
    return {
        "mae": float(error.mean()),
        "mape": float((error / np.maximum(actual, 1e-9)).mean()),
        "records": float(len(records)),
    }
