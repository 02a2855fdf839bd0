"""Train the default maintenance models from ../shared/data and write them as artifacts.

    python -m services.maintenance.train [--data ../shared/data] [--out DIR] [--folds 5]

Writes ``rul-fd001`` .. ``rul-fd004`` (one remaining-useful-life model per C-MAPSS
subset) and ``failure-ai4i`` into ``services/maintenance/models`` with the manifest
(sha256, training-data fingerprint, metrics, parameters). Only the training files are
read: each RUL model's parameters are chosen and its interval calibrated by
cross-validation grouped by unit (``domain/rul_selection.py``). Deterministic for a
given data set: every estimator has a fixed seed. Runs single-threaded (the machines
are shared).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict
from pathlib import Path

import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime, so threadpool_limits caps it)
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.maintenance import artifacts
from services.maintenance.domain import cmapss, failure, rul, rul_selection

logger = logging.getLogger("services.maintenance.train")
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def train_rul(data: Path, out: Path, subsets: list[str], folds: int) -> None:
    for subset in subsets:
        train_path = data / f"train_{subset}.txt"
        units = cmapss.load_units(train_path)
        conditions = rul.conditions_of(subset)
        started = time.monotonic()
        trained = rul_selection.train_rul(units, conditions, folds=folds)
        version = artifacts.save_artifact(
            out,
            f"rul-{subset.lower()}",
            trained.model.to_arrays(),
            kind="rul",
            training_data=artifacts.fingerprint([train_path]),
            metrics=trained.metrics,
            params={
                **asdict(trained.members[0]),
                "members": [asdict(params) for params in trained.members],
                "conditions": conditions,
                "cap": cmapss.RUL_CAP,
                "interval_coverage": trained.model.interval.coverage,
                "interval_calibrated_on": "out-of-fold residuals at"
                f" {rul_selection.CALIBRATION_CUTS} random cuts of each unit",
                "selected_by": f"{folds}-fold cross-validation grouped by unit, one seed, RMSE at"
                " a random cut of each held-out unit",
                "grid": trained.grid,
            },
        )
        logger.info(
            "rul-%s %s in %.0f s: %s, chosen %s",
            subset.lower(),
            version,
            time.monotonic() - started,
            {k: round(v, 3) for k, v in trained.metrics.items()},
            trained.members,
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
    parser.add_argument(
        "--folds", type=int, default=rul_selection.DEFAULT_FOLDS, help="cross-validation folds"
    )
    parser.add_argument("--no-cv", action="store_true", help="skip the AI4I cross-validation")
    parser.add_argument("--skip-failure", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with threadpool_limits(1):
        train_rul(args.data / "cmapss", args.out, args.subsets.split(","), args.folds)
        if not args.skip_failure:
            train_failure(args.data / "ai4i", args.out, cv=not args.no_cv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
