"""Train the processing-time model and write it with its manifest.

    python -m services.scheduling.train_durations [--out DIR] [--records N] [--seed S]

No public data set holds shop-floor operation records (product, machine, quantity,
shift, duration), so the default model learns from the documented synthetic generator in
``domain/durations.py`` (seeded, hence reproducible); ``--csv FILE`` trains on real
records instead (columns product,machine_id,quantity,shift,duration). 80% of the
records train, 20% measure the metrics in the manifest.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from services.scheduling import duration_artifacts
from services.scheduling.domain.durations import (
    OperationRecord,
    evaluate,
    fingerprint,
    fit,
    synthetic_history,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the processing-time model.")
    parser.add_argument("--out", type=Path, default=duration_artifacts.DEFAULT_DIRECTORY)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--csv", type=Path, help="real records instead of synthetic ones")
    parser.add_argument("--alpha", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.csv:
        with args.csv.open(newline="") as handle:
            records = [
                OperationRecord(
                    row["product"],
                    row["machine_id"],
                    int(row["quantity"]),
                    row["shift"],
                    float(row["duration"]),
                )
                for row in csv.DictReader(handle)
            ]
        source = {"source": str(args.csv.name)}
    else:
        records = synthetic_history(args.records, args.seed)
        source = {"source": "synthetic_history", "records": args.records, "seed": args.seed}
    cut = int(len(records) * 0.8)
    model = fit(records[:cut], alpha=args.alpha)
    metrics = evaluate(model, records[cut:])
    version = duration_artifacts.save(
        args.out,
        model,
        training_data={**source, "sha256": fingerprint(records)},
        metrics=metrics,
        params={"alpha": args.alpha, "train_records": cut},
    )
    print(f"{version}: test MAE {metrics['mae']:.2f}, MAPE {100 * metrics['mape']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
