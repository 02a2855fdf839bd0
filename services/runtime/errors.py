"""Errors that domain code raises, free of any gRPC import.

The error-mapping interceptor turns each class into a status code (see
``interceptors/errors.py``); anything else becomes INTERNAL.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, named by its path (e.g. ``problem.jobs[2].id``)."""

    field: str
    description: str


class ServiceError(Exception):
    """Base class: an expected failure with a message safe to show the caller."""


class InvalidArgument(ServiceError):
    """The request is malformed; ``violations`` name each bad field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one field violation")
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))

    def __reduce__(self) -> tuple[type[InvalidArgument], tuple[list[FieldViolation]]]:
        # Rebuilt from its violations, not its message, when it crosses from an
        # inspection worker process.
        return (type(self), (self.violations,))


class NotFound(ServiceError):
    """The named resource does not exist."""


class AlreadyExists(ServiceError):
    """The resource to create exists already."""


class FailedPrecondition(ServiceError):
    """The system is not in a state where the request can be carried out."""


class ResourceExhausted(ServiceError):
    """A limit was reached; the caller may retry later or with less."""


class Unavailable(ServiceError):
    """A dependency is not usable right now; the call may be retried."""


class DeadlineExceeded(ServiceError):
    """The call's deadline passed before its work was done."""


class Violations:
    """Collects field violations while validating a request, then raises them at once."""

    def __init__(self) -> None:
        self._found: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self._found.append(FieldViolation(field, description))

    def check(self, condition: bool, field: str, description: str) -> bool:
        if not condition:
            self.add(field, description)
        return condition

    def raise_if_any(self) -> None:
        if self._found:
            raise InvalidArgument(list(self._found))


class Unauthenticated(ServiceError):
    """The caller presented no valid credentials."""


class PermissionDenied(ServiceError):
    """The caller is known but may not call this method."""
