"""Record measurements of a characteristic, chart them with run rules, and list the
inspection models.

    python examples/quality_sync.py [localhost:8080] [characteristic]

CLI: mfg quality chart line-3/ring/diameter --type xbar_r --rules nelson --png chart.png
"""

from __future__ import annotations

import json
import random
import sys

from manufacturing.quality.v1 import control_chart_pb2
from manufacturing.quality.v1 import quality_service_pb2 as pb
from manufacturing_sdk import QualityClient


def ring_diameters() -> list[control_chart_pb2.Subgroup]:
    """25 subgroups of five rings of 74.000 mm (sigma 3 um); the last one has drifted."""
    noise = random.Random(7)  # noqa: S311 (made-up measurements, the same every run)
    subgroups = []
    for index in range(25):
        drift = 0.012 if index == 24 else 0.0
        values = [round(noise.gauss(74.0 + drift, 0.003), 4) for _ in range(5)]
        subgroups.append(control_chart_pb2.Subgroup(values=values))
    return subgroups


def main(target: str, characteristic: str) -> None:
    with QualityClient(target) as client:
        recorded = client.record_measurements(
            pb.RecordMeasurementsRequest(characteristic=characteristic, subgroups=ring_diameters())
        )
        chart = client.compute_control_chart(
            pb.ComputeControlChartRequest(
                characteristic=characteristic,
                chart_type=control_chart_pb2.CHART_TYPE_XBAR_R,
                rules=control_chart_pb2.RULE_SET_NELSON,
            )
        ).chart
        models = client.list_models(pb.ListModelsRequest()).models
    means = chart.series[0]
    print(
        json.dumps(
            {
                "stored_subgroups": recorded.total,
                "center_line": means.limits.center_line,
                "upper_control_limit": means.limits.upper_control_limit,
                "out_of_control": [p.subgroup_index for p in means.points if p.out_of_control],
                "active_models": sorted(f"{m.name} {m.version}" for m in models if m.active),
            }
        )
    )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(
        arguments[0] if arguments else "localhost:8080",
        arguments[1] if len(arguments) > 1 else "line-3/ring/diameter",
    )
