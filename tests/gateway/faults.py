"""TEST-ONLY fault injection: turns a copy of the service tree into a broken release.

Never imported by the services. The rollout tests copy ``services/`` into a temporary
"release" tree, write the version they want into its VERSION file and, for a broken
release, put this file next to it as ``rollout_fault.py`` plus a ``sitecustomize.py``
calling :func:`install`. Python imports ``sitecustomize`` at start-up from the first
``PYTHONPATH`` entry, which is the release tree, so only processes of that release are
affected: the same code with a defect, as a bad build would be.

Faults:

- ``not-ready``: readiness never passes (the service reports NOT_SERVING forever);
- ``errors``: every domain call fails INTERNAL (GetServiceInfo still answers);
- ``errors-under-load``: domain calls fail INTERNAL once the process has answered
  ``ERRORS_AFTER`` of them (a defect that smoke calls do not reach);
- ``different-answers``: domain answers come back with their first number changed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

ERRORS_AFTER = 15


def _change_first_number(message: Any) -> bool:
    """Add 1.0 to the first float/double found depth-first; True if one was changed."""
    for field, value in message.ListFields():
        if field.type in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
            if field.label == field.LABEL_REPEATED:
                if len(value):
                    value[0] += 1.0
                    return True
            else:
                setattr(message, field.name, value + 1.0)
                return True
        elif field.type == field.TYPE_MESSAGE:
            children = value if field.label == field.LABEL_REPEATED else [value]
            for child in children:
                if hasattr(child, "ListFields") and _change_first_number(child):
                    return True
    return False


def install(kind: str) -> None:
    import grpc

    if kind == "not-ready":
        from services.runtime import readiness

        readiness.Readiness.failing_checks = lambda self: ["injected-fault"]  # type: ignore[method-assign]
        return

    counter = itertools.count(1)

    def wrap(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def handler(request: Any, context: grpc.ServicerContext) -> Any:
            number = next(counter)
            if kind == "errors" or (kind == "errors-under-load" and number > ERRORS_AFTER):
                context.abort(grpc.StatusCode.INTERNAL, "injected fault")
            response = behaviour(request, context)
            if kind == "different-answers":
                _change_first_number(response)
            return response

        return handler

    class Fault(grpc.ServerInterceptor):
        def intercept_service(
            self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
        ) -> Any:
            handler = continuation(details)
            method: str = details.method
            if (
                handler is None
                or handler.unary_unary is None
                or not method.startswith("/manufacturing.")
                or method.endswith("/GetServiceInfo")
            ):
                return handler
            return grpc.unary_unary_rpc_method_handler(
                wrap(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

    original = grpc.server

    def server(*args: Any, **kwargs: Any) -> Any:
        kwargs["interceptors"] = [Fault(), *(kwargs.get("interceptors") or [])]
        return original(*args, **kwargs)

    grpc.server = server
