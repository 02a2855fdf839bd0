"""Per-call context shared by the interceptors, the log formatter and handlers."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.runtime.auth import Principal

# Request id of the call the current thread is serving; "" outside a call.
request_id: ContextVar[str] = ContextVar("request_id", default="")
# Who is calling, when authentication is on; None outside a call or with it off.
principal: ContextVar[Principal | None] = ContextVar("principal", default=None)
