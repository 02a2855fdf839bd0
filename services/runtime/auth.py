"""Who is calling: bearer JWTs for people and services, API keys for machines.

JWTs are verified against a configured JWK set (signature, expiry, issuer, audience);
the caller's role is the highest role named in the token's role claim. API keys are
kept only as SHA-256 digests in a file of ``name digest`` lines, so the file is no
secret; a key authenticates a machine that may only call methods that allow keys.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jwt

from services.runtime.access import Role
from services.runtime.config import AuthSettings
from services.runtime.errors import Unauthenticated

ALGORITHMS = ("RS256", "ES256", "EdDSA")
CLOCK_SKEW_S = 30


@dataclass(frozen=True)
class Principal:
    subject: str
    kind: Literal["user", "api_key"]
    role: Role | None = None


def digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def read_api_keys(path: Path) -> dict[str, str]:
    """``{sha256 digest: key name}`` from lines ``name digest`` (``#`` starts a comment)."""
    keys: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2 or len(fields[1]) != 64:
            raise ValueError(f"{path}:{number}: expected 'name sha256-hex-digest'")
        keys[fields[1].lower()] = fields[0]
    return keys


class Authenticator:
    def __init__(
        self,
        *,
        jwks: jwt.PyJWKSet | None,
        issuer: str,
        audience: str,
        role_claim: str = "roles",
        api_keys: Mapping[str, str] | None = None,
    ) -> None:
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._role_claim = role_claim
        self._api_keys = dict(api_keys or {})

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> Authenticator:
        jwks = None
        if settings.jwks_file:
            jwks = jwt.PyJWKSet.from_json(Path(settings.jwks_file).read_text(encoding="utf-8"))
        api_keys = read_api_keys(Path(settings.api_keys_file)) if settings.api_keys_file else {}
        return cls(
            jwks=jwks,
            issuer=settings.issuer,
            audience=settings.audience,
            role_claim=settings.role_claim,
            api_keys=api_keys,
        )

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> Principal:
        headers = {key: value for key, value in metadata if isinstance(value, str)}
        if api_key := headers.get("x-api-key"):
            return self._from_api_key(api_key)
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("send 'authorization: Bearer <token>' or 'x-api-key'")
        return self._from_jwt(token.strip())

    def _from_api_key(self, api_key: str) -> Principal:
        presented = digest(api_key)
        for known, name in self._api_keys.items():
            if hmac.compare_digest(known, presented):
                return Principal(subject=f"api-key:{name}", kind="api_key")
        raise Unauthenticated("unknown API key")

    def _from_jwt(self, token: str) -> Principal:
        if self._jwks is None:
            raise Unauthenticated("bearer tokens are not accepted here")
        try:
            key_id = jwt.get_unverified_header(token).get("kid")
            key = self._key(key_id)
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=list(ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                leeway=CLOCK_SKEW_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: {error}") from error
        roles = claims.get(self._role_claim, [])
        roles = [roles] if isinstance(roles, str) else roles
        known = [role for name in roles if isinstance(name, str) and (role := Role.parse(name))]
        return Principal(subject=str(claims["sub"]), kind="user", role=max(known, default=None))

    def _key(self, key_id: object) -> jwt.PyJWK:
        assert self._jwks is not None
        for key in self._jwks.keys:
            if key.key_id == key_id or (key_id is None and len(self._jwks.keys) == 1):
                return key
        raise jwt.InvalidTokenError(f"no key with id {key_id!r}")
