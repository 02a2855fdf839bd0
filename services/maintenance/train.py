"""Train the default maintenance models from ../shared/data and write them as artifacts.

    python -m services.maintenance.train [--data ../shared/data] [--out DIR] [--no-cv]

Writes ``rul-fd001`` .. ``rul-fd004`` (one remaining-useful-life model per C-MAPSS
subset) and ``failure-ai4i`` into ``services/maintenance/models`` with the manifest
(sha256, training-data fingerprint, metrics, parameters). Deterministic for a given
data set: every estimator has a fixed seed. Runs single-threaded (the machines are
shared); takes about ten minutes with cross-validation.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.maintenance import artifacts
from services.maintenance.domain import cmapss, failure, rul

logger = logging.getLogger("services.maintenance.train")
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def fd001_test_metrics(model: rul.RulModel, data: Path) -> dict[str, float]:
    test_path, truth_path = data / "test_FD001.txt", data / "RUL_FD001.txt"
    if not (test_path.is_file() and truth_path.is_file()):
        return {}
    return score_test_set(model, test_path, truth_path)


def score_test_set(model: rul.RulModel, test_path: Path, truth_path: Path) -> dict[str, float]:
    """RMSE, PHM08 score and interval coverage at the last cycle of each test unit,
    against the truth capped at the model's cap and against the truth as given."""
    units = cmapss.load_units(test_path)
    truth = cmapss.load_truth(truth_path)
    if len(truth) != len(units):
        raise ValueError(f"{truth_path.name}: {len(truth)} values for {len(units)} test units")
    point, lower, upper = rul.predict_last_cycles(model, units)
    capped = np.minimum(truth, model.cap)
    return {
        "test_rmse_capped": cmapss.rmse(point, capped),
        "test_score_capped": cmapss.phm08_score(point, capped),
        "test_rmse": cmapss.rmse(point, truth),
        "test_score": cmapss.phm08_score(point, truth),
        "test_interval_coverage_capped": float(np.mean((lower <= capped) & (capped <= upper))),
    }


def train_rul(data: Path, out: Path, subsets: list[str], cv: bool) -> None:
    params = rul.RulParams()
    for subset in subsets:
        train_path = data / f"train_{subset}.txt"
        units = cmapss.load_units(train_path)
        conditions = rul.conditions_of(subset)
        started = time.monotonic()
        model = rul.fit_rul_model(units, conditions, params)
        metrics: dict[str, float] = {"train_units": len(units)}
        if subset == "FD001":
            metrics.update(fd001_test_metrics(model, data))
        if cv:
            metrics["cv5_rmse_capped"] = rul.grouped_cv_rmse(units, conditions, params)
        version = artifacts.save_artifact(
            out,
            f"rul-{subset.lower()}",
            model.to_arrays(),
            kind="rul",
            training_data=artifacts.fingerprint([train_path]),
            metrics=metrics,
            params={**asdict(params), "conditions": conditions, "cap": cmapss.RUL_CAP},
        )
        logger.info(
            "rul-%s %s in %.0f s: %s",
            subset.lower(),
            version,
            time.monotonic() - started,
            {k: round(v, 3) for k, v in metrics.items()},
        )


def train_failure(data: Path, out: Path, cv: bool) -> None:
    path = data / "ai4i2020.csv"
    loaded = failure.load_ai4i(path)
    x = failure.snapshot_features(loaded.snapshots)
    model = failure.fit_failure_model(x, loaded.labels)
    metrics: dict[str, float] = {
        "rows": len(loaded.snapshots),
        "dropped_unknown_cause": loaded.dropped_unknown_cause,
    }
    if cv:
        metrics.update(failure.cross_validate(loaded))
    version = artifacts.save_artifact(
        out,
        "failure-ai4i",
        model.to_arrays(),
        kind="failure",
        training_data=artifacts.fingerprint([path]),
        metrics=metrics,
        params={"modes": list(failure.MODES), "estimator": "HistGradientBoostingClassifier"},
    )
    logger.info("failure-ai4i %s: %s", version, {k: round(v, 3) for k, v in metrics.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=artifacts.DEFAULT_DIRECTORY)
    parser.add_argument("--subsets", default=",".join(cmapss.SUBSETS))
    parser.add_argument("--no-cv", action="store_true", help="skip cross-validation")
    parser.add_argument("--skip-failure", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with threadpool_limits(1):
        train_rul(args.data / "cmapss", args.out, args.subsets.split(","), cv=not args.no_cv)
        if not args.skip_failure:
            train_failure(args.data / "ai4i", args.out, cv=not args.no_cv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
