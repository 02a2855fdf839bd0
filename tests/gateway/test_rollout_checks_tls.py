"""The rollout's checks over mutual TLS to a color whose certificate names its Service
(as on Kubernetes, k8s/components/service-mtls), dialled through a local port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.rollout import checks, xds
from services.rollout.kubernetes import KubernetesPlatform
from services.runtime import devcerts
from services.runtime.server import GrpcService
from tests.harness import TEST_BUILD, mtls_environ, serve, settings_for

SERVICE, COLOR = "quality", "green"
VERSION = TEST_BUILD.version


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("color-certs")
    # Only the Service's name: not localhost, not 127.0.0.1, the address dialled.
    devcerts.create(folder, hosts=(xds.cluster_name(SERVICE, COLOR),))
    return folder


@pytest.fixture(scope="module")
def color(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[GrpcService]:
    settings = settings_for(
        SERVICE,
        tmp_path_factory.mktemp("color"),
        DEPLOY_COLOR=COLOR,
        **mtls_environ(certs),
    )
    with serve(settings) as service:
        yield service


def client_tls(certs: Path) -> checks.ClientTls:
    return checks.ClientTls(
        str(certs / "ca.pem"), str(certs / "client.pem"), str(certs / "client-key.pem")
    )


def test_checks_expect_the_name_the_platform_gives(color: GrpcService, certs: Path) -> None:
    name = KubernetesPlatform("manufacturing-ai").server_name(SERVICE, COLOR)
    assert name == xds.cluster_name(SERVICE, COLOR)
    tls = client_tls(certs).naming(name)

    assert checks.smoke(color.port, SERVICE, VERSION, COLOR, tls=tls) > 1
    samples = checks.SAMPLES[SERVICE]
    assert checks.parity(
        color.port, color.port, SERVICE, samples, live_tls=tls, new_tls=tls
    ) == len(samples)


def test_without_the_name_the_dialled_address_fails_verification(
    color: GrpcService, certs: Path
) -> None:
    with pytest.raises(checks.CheckFailed, match="UNAVAILABLE"):
        checks.smoke(color.port, SERVICE, VERSION, COLOR, tls=client_tls(certs))
