"""What a browser sends the gateway: CORS preflights and gRPC-Web calls, over http.client
(HTTP/1.1, as fetch in a page; no proxy settings from the environment apply)."""

from __future__ import annotations

import http.client
import struct
from dataclasses import dataclass

# What connect-web's gRPC-Web transport asks a preflight for (plus credentials).
REQUESTED_HEADERS = ("content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "authorization")
_TRAILER_FLAG = 0x80


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names lowercased
    body: bytes

    def allowed(self, header: str) -> set[str]:
        """The comma-separated names of an access-control header, lowercased."""
        value = self.headers.get(header, "")
        return {name.strip().lower() for name in value.split(",") if name.strip()}

    def grpc_status(self) -> str | None:
        """A gRPC-Web call's status: from the headers (trailers-only reply) or else from
        the trailer frame at the end of the body."""
        if "grpc-status" in self.headers:
            return self.headers["grpc-status"]
        offset = 0
        while offset + 5 <= len(self.body):
            flags, length = struct.unpack(">BI", self.body[offset : offset + 5])
            frame = self.body[offset + 5 : offset + 5 + length]
            offset += 5 + length
            if flags & _TRAILER_FLAG:
                for line in frame.decode("ascii").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "grpc-status":
                        return value.strip()
        return None


def _send(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> Reply:
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        content = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, content)
    finally:
        connection.close()


def preflight(connection: http.client.HTTPConnection, path: str, origin: str) -> Reply:
    """The OPTIONS a browser sends before a cross-origin gRPC-Web call."""
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": ",".join(REQUESTED_HEADERS),
    }
    return _send(connection, "OPTIONS", path, headers)


def call(
    connection: http.client.HTTPConnection,
    path: str,
    message: bytes,
    origin: str,
    headers: dict[str, str] | None = None,
) -> Reply:
    """A unary gRPC-Web call (binary) with ``message`` serialized, from a page at ``origin``."""
    frame = struct.pack(">BI", 0, len(message)) + message
    sent = {
        "Origin": origin,
        "Content-Type": "application/grpc-web+proto",
        "X-Grpc-Web": "1",
        **(headers or {}),
    }
    return _send(connection, "POST", path, sent, frame)
