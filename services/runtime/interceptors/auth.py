"""Lets a call through only when its caller may make it; logs every denial.

Answers UNAUTHENTICATED when credentials are missing or invalid, PERMISSION_DENIED
when the caller's role is below the method's (or an API key meets a method that does
not allow keys). The principal is available to handlers as ``context.principal``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import grpc

from services.runtime import context as call_context
from services.runtime.access import OPEN_SERVICES, MethodRule
from services.runtime.auth import Authenticator, Principal
from services.runtime.errors import PermissionDenied, ServiceError
from services.runtime.interceptors._wrap import ScopeInterceptor

logger = logging.getLogger("audit")


def permits(rule: MethodRule, principal: Principal) -> bool:
    if principal.kind == "api_key":
        return rule.allow_api_key
    return principal.role is not None and principal.role >= rule.required_role


class AuthInterceptor(ScopeInterceptor):
    def __init__(self, rules: Mapping[str, MethodRule], authenticator: Authenticator) -> None:
        self._rules = rules
        self._authenticator = authenticator

    @contextmanager
    def scope(self, context: grpc.ServicerContext, method: str) -> Iterator[None]:
        service = method.lstrip("/").rpartition("/")[0]
        if service in OPEN_SERVICES:
            yield
            return
        principal: Principal | None = None
        try:
            principal = self._authenticator.authenticate(context.invocation_metadata() or ())
            rule = self._rules.get(method)
            if rule is None or not permits(rule, principal):
                needed = (
                    "an API key is not enough"
                    if principal.kind == "api_key"
                    else (
                        f"needs role {rule.required_role.name.lower()}"
                        if rule
                        else "unknown method"
                    )
                )
                raise PermissionDenied(f"{principal.subject} may not call {method}: {needed}")
        except ServiceError as denial:
            logger.warning(
                "denied",
                extra={
                    "grpc_method": method,
                    "subject": principal.subject if principal else "",
                    "reason": str(denial),
                    "peer": context.peer(),
                },
            )
            raise
        token = call_context.principal.set(principal)
        try:
            yield
        finally:
            call_context.principal.reset(token)
