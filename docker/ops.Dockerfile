# syntax=docker/dockerfile:1
# The operations image: `python -m services.ops` with pgBackRest and the PostgreSQL 15
# server binaries that `backup verify` starts its scratch cluster with. The backup
# CronJobs (k8s/components/backups) run it. Only the packages services.ops imports are
# installed, not the services' solver and model stack. Build (deploy.sh does this,
# tagging <version>-<git revision> with the version from services/ops/VERSION):
#   docker build -f docker/ops.Dockerfile \
#     --build-arg GIT_REVISION="$(git rev-parse --short=12 HEAD)" -t manufacturing-ai/ops:0.1.0 .
#
# The base is the services' base (docker/Dockerfile): Debian bookworm, whose pgBackRest
# (2.45) and PostgreSQL major (15) the database host must run too. pgBackRest refuses a
# remote of another version, and a restore needs the server major that took the backup.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: a virtualenv with services.ops and what it imports --------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The pins of requirements/constraints.txt, which also pins what these pull in
# (tests/delivery/test_images.py holds them equal); wheels only, so no compiler.
COPY requirements/constraints.txt requirements/
RUN pip install --only-binary=:all: -c requirements/constraints.txt \
        grpcio==1.81.1 grpcio-health-checking==1.81.1 protobuf==6.33.6 \
        prometheus_client==0.26.0 setuptools==84.2.1
COPY pyproject.toml ./
COPY gen/python gen/python
COPY services services
RUN pip install --no-deps --no-build-isolation . \
    && pip uninstall --yes setuptools pip \
    && python -m compileall -q /opt/venv

# --- runtime: slim base, pgBackRest and PostgreSQL from Debian, a non-root user ---------
FROM ${PYTHON_IMAGE} AS runtime
ARG GIT_REVISION=unknown
LABEL org.opencontainers.image.title="manufacturing-ai-ops" \
      org.opencontainers.image.description="Manufacturing AI operations: checks and pgBackRest backups" \
      org.opencontainers.image.revision="${GIT_REVISION}" \
      org.opencontainers.image.source="https://github.com/example/manufacturing-ai"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# postgresql-common first, told not to create a cluster: the image only runs initdb for
# scratch restores. pgbackrest is pinned to the exact version the database host runs;
# PostgreSQL to its major by name, taking Debian's security updates within it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-common \
    && sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf \
    && apt-get install -y --no-install-recommends pgbackrest=2.45-1 postgresql-15 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && /usr/local/bin/python -m pip uninstall --yes --quiet pip setuptools wheel \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
# Scratch under /tmp (the root filesystem is read-only in Kubernetes); initdb and pg_ctl
# from PostgreSQL 15 (services/ops/pgcluster.py reads PG_BIN).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PG_BIN=/usr/lib/postgresql/15/bin \
    GIT_REVISION=${GIT_REVISION}
# Refuse to build an image whose tools do not answer.
RUN python -I -m services.ops --help >/dev/null \
    && pgbackrest version \
    && "${PG_BIN}/initdb" --version
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["python", "-m", "services.ops"]
CMD ["--help"]
