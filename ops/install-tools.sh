#!/usr/bin/env bash
# Install the operations tools the tests and the `ops` command use, only those missing:
#   promtool     (Debian package prometheus; the server it also ships is NOT started)
#   pgbackrest   (Debian package pgbackrest)
#   initdb/pg_ctl/psql of PostgreSQL (Debian postgresql-15, usually present already)
# Idempotent: a second run installs nothing. Needs root (or sudo) only when installing.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v pgbackrest >/dev/null 2>&1 || missing+=(pgbackrest)
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "ops tools: all present"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "ops tools: installing ${missing[*]}"
# Never start the Prometheus server the package ships: keep invoke-rc.d from starting
# services while installing (unless a policy already says so).
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    created_policy=1
fi
cleanup() { if [ -n "$created_policy" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

# Belt and braces: systemd may still have started it on a full host.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $sudo systemctl disable --now prometheus || true
fi
promtool --version | head -n1
pgbackrest version
