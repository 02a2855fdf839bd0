"""``python -m services.devstack``: run the whole suite locally (what `make up` does)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from services.devstack import gateway_security as gs
from services.devstack.banner import Access, banner
from services.devstack.envoy import EnvoyError
from services.devstack.suite import SERVICES, LocalSuite, SuiteError, SuitePorts


def parse_ports(text: str) -> dict[str, int]:
    ports = [int(p) for p in text.split(",")]
    if len(ports) != len(SERVICES):
        raise argparse.ArgumentTypeError(f"give {len(SERVICES)} ports: {','.join(SERVICES)}")
    return dict(zip(SERVICES, ports, strict=True))


def gateway_security(options: argparse.Namespace) -> gs.GatewaySecurity:
    """What the ``--gateway-tls``, ``--jwks`` and ``--rate-limit`` switches turn on."""
    tls = jwt = rate_limit = None
    if options.gateway_tls:
        certs = options.gateway_tls
        tls = gs.ListenerTls(str(certs / "server.pem"), str(certs / "server-key.pem"))
    if options.jwks:
        jwt = gs.Jwt(options.issuer, (options.audience,), jwks_file=str(options.jwks))
    if options.rate_limit:
        rate_limit = gs.RateLimit(options.rate_limit, 2 * options.rate_limit)
    return gs.GatewaySecurity(tls, jwt, rate_limit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.devstack", description=__doc__)
    parser.add_argument("--gateway-port", type=int, default=8080)
    parser.add_argument("--admin-port", type=int, default=9901, help="Envoy admin, on 127.0.0.1")
    parser.add_argument(
        "--service-ports", type=parse_ports, default=None, help="scheduling,quality,maintenance"
    )
    parser.add_argument(
        "--green-ports", type=parse_ports, default=None, help="idle colors' ports, same order"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var"))
    secured = parser.add_argument_group(
        "gateway security", "off by default in development; each switch turns one on"
    )
    secured.add_argument(
        "--gateway-tls",
        type=Path,
        metavar="CERT_DIR",
        help="TLS on the gateway with CERT_DIR/server.pem, server-key.pem and ca.pem "
        "(python -m services.runtime.devcerts CERT_DIR makes them)",
    )
    secured.add_argument(
        "--service-tls",
        type=Path,
        metavar="CERT_DIR",
        help="mutual TLS between the gateway and the services with CERT_DIR's ca.pem, "
        "server.pem and client.pem (and keys); rollouts then need ROLLOUT_TLS_* (printed)",
    )
    secured.add_argument(
        "--jwks",
        type=Path,
        metavar="FILE",
        help="require JWTs signed by a key of this JWK set, at the gateway and the services",
    )
    secured.add_argument("--issuer", default="", help="the tokens' iss (with --jwks)")
    secured.add_argument("--audience", default="manufacturing-ai", help="their aud")
    secured.add_argument(
        "--rate-limit",
        type=int,
        metavar="N",
        help="calls per second per client at the gateway (bursts up to 2N)",
    )
    options = parser.parse_args(argv)
    if options.jwks and not options.issuer:
        parser.error("--jwks needs --issuer")

    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    ports = SuitePorts(
        options.gateway_port, options.admin_port, options.service_ports, options.green_ports
    )
    security = gateway_security(options)
    suite = LocalSuite(
        ports,
        options.data_dir,
        options.data_dir / "logs",
        security,
        str(options.gateway_tls / "ca.pem") if options.gateway_tls else "",
        options.service_tls,
    )
    started = time.monotonic()
    print("Starting scheduling, quality, maintenance and the Envoy gateway ...", flush=True)
    try:
        suite.start()
        access = Access(suite.gateway_ca_file, token=security.jwt is not None)
        print(
            banner(ports.gateway, suite.log_dir, options.data_dir, access, suite.client_tls),
            flush=True,
        )
        print(f"ready in {time.monotonic() - started:.1f} s", flush=True)
        while not stop.wait(0.5):
            if exited := suite.first_exited():
                print(
                    f"{exited} stopped unexpectedly; see {suite.log_dir}/{exited}-*.log",
                    file=sys.stderr,
                )
                return 1
        print("Stopping ...", flush=True)
        return 0
    except (SuiteError, EnvoyError, OSError) as error:
        print(f"could not start the suite: {error}", file=sys.stderr)
        return 1
    finally:
        suite.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
