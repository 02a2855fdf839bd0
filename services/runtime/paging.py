"""Page sizes and opaque page tokens for List methods (AIP-158 style)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from services.runtime.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(requested: int, field: str = "page_size") -> int:
    if requested < 0:
        raise InvalidArgument([FieldViolation(field, "must not be negative")])
    if requested > MAX_PAGE_SIZE:
        raise InvalidArgument([FieldViolation(field, f"must be at most {MAX_PAGE_SIZE}")])
    return requested or DEFAULT_PAGE_SIZE


def encode_token(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, keys: set[str], field: str = "page_token") -> dict[str, Any] | None:
    """The position a token stands for, or None for the first page."""
    if not token:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as error:
        raise InvalidArgument([FieldViolation(field, "not a token this service issued")]) from error
    if not isinstance(position, dict) or set(position) != keys:
        raise InvalidArgument([FieldViolation(field, "not a token this service issued")])
    return position
