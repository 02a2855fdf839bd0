"""Models loaded once at start, each either serving or refused with its reason.

A model whose manifest or artifact is refused (hash or signature mismatch, a missing
or unreadable file) must not stop the process: everything that does not need it keeps
working. The refusal is logged once (``model manifest refused``, naming the manifest
and the reason), the service stays NOT_SERVING while any of its models is refused
(``all_serving`` is its ``models`` readiness check, as in the quality service, whose
registry reloads its promotable models in that check instead), and each call that needs
the model is answered UNAVAILABLE saying why. A replica that cannot serve all of its
models is thus routed around, yet answers directly what it can.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from services.runtime import model_signing
from services.runtime.errors import Unavailable

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class ModelRefused(Exception):
    """A model's manifest or artifact is missing, malformed or does not verify."""


@dataclass(frozen=True)
class ServedModel(Generic[T_co]):
    """A model by name: the loaded one, or the reason it was refused."""

    name: str
    loaded: T_co | None
    refusal: str = ""

    @property
    def serving(self) -> bool:
        return self.loaded is not None

    def get(self) -> T_co:
        """The model, or Unavailable naming it and why it is not served."""
        if self.loaded is None:
            raise Unavailable(f"model {self.name} is not serving: {self.refusal}")
        return self.loaded


def refused(name: str, manifest: Path, error: Exception) -> ServedModel[T]:
    """``name`` refused because of ``error``, logged once (signature refusals log themselves).

    A loader failing otherwise than by refusing its files is a fault: the line carries
    its traceback.
    """
    reason = str(error) or type(error).__name__
    if not _is_signature_refusal(error):
        fault = None if isinstance(error, ModelRefused | OSError) else error
        model_signing.log_refusal(manifest, reason, fault)
    return ServedModel(name, None, f"{manifest} was refused: {reason}")


def load_model(name: str, manifest: Path, load: Callable[[], T]) -> ServedModel[T]:
    """``load()`` as model ``name`` (described by ``manifest``), or its refusal."""
    try:
        return ServedModel(name, load())
    except Exception as error:  # whatever stops a model loading refuses only that model
        return refused(name, manifest, error)


def all_serving(models: Iterable[ServedModel[object]]) -> bool:
    return all(model.serving for model in models)


def _is_signature_refusal(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, model_signing.SignatureError):
            return True
        error = error.__cause__
    return False
