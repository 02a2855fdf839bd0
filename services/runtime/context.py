"""Per-call context shared by the interceptors and the log formatter."""

from __future__ import annotations

from contextvars import ContextVar

# Request id of the call the current thread is serving; "" outside a call.
request_id: ContextVar[str] = ContextVar("request_id", default="")
