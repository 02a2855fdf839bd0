#!/usr/bin/env bash
# The mfg command line on the example inputs, against the suite at $MFG_TARGET
# (default localhost:8080; start it with `make up`). Pictures go to the folder given
# as the first argument (default: the current one).
#
#   examples/cli.sh /tmp/pictures
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-.}"
mfg="${MFG:-mfg}"

$mfg info
$mfg schedule solve "$here/problem.yaml" --time-limit 5 --gantt "$out/plan.png"
$mfg --json schedule solve "$here/problem.yaml" --time-limit 5 --stream
$mfg maintenance ingest "$here/readings.csv"
$mfg --json call maintenance GetLatestReadings -d '{"machine_id": "press-7"}'
$mfg call quality RecordMeasurements -d "$here/measurements.yaml"
$mfg quality chart line-3/ring/diameter --type xbar_r --rules nelson --png "$out/chart.png"
$mfg quality inspect "$here/part.png" --model neu-surface --overlay "$out/overlay.png"
