"""Inspection off the serving process's GIL: a pool of worker processes.

One inspection is many short NumPy and OpenCV calls on a small image, so worker threads
inside the serving process spend their time waiting for the GIL: on two cores, two
threads judged fewer 200x200 images per second (about 140) than the same work in two
processes (about 290). Each worker process loads (and hash-checks) a model version from
its directory when warmed up with it (the readiness check does, for the active versions)
or first asked to judge with it; the serving process sends only the encoded image and
which version to use, and gets back the inspection.

Threads remain a choice (``quality.inspection_pool: threads``) for platforms that may not
start processes; both run the same function.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from services.quality.domain.inspection.artifacts import ARRAYS
from services.quality.domain.inspection.images import decode_gray
from services.quality.domain.inspection.inspector import (
    Inspection,
    Inspector,
    LoadedModel,
    load_model,
)
from services.runtime.config import InspectionPool
from services.runtime.errors import FailedPrecondition, Unavailable

Result = TypeVar("Result")
MODELS_KEPT = 8  # model versions a worker keeps loaded: the active ones and a few recent


@dataclass(frozen=True)
class ModelRef:
    """Which model version to judge with, as a worker process can find it on disk."""

    directory: str
    arrays_sha256: str  # a different file in the same folder is a different model


@dataclass(frozen=True)
class Judged:
    inspection: Inspection
    width: int
    height: int
    seconds: float  # decoding and inspecting, in the worker


_INSPECTOR = Inspector()


@lru_cache(maxsize=MODELS_KEPT)
def _model(ref: ModelRef) -> LoadedModel:
    model = load_model(Path(ref.directory))
    if model.manifest.files.get(ARRAYS) != ref.arrays_sha256:
        raise FailedPrecondition(
            f"model {model.name} {model.version} changed on disk after the service loaded it"
        )
    return model


def _ref(model: LoadedModel) -> ModelRef:
    if model.directory is None:
        raise ValueError(f"model {model.name} {model.version} was not loaded from disk")
    return ModelRef(str(model.directory), model.manifest.files[ARRAYS])


def _load(refs: tuple[ModelRef, ...]) -> None:
    for ref in refs:
        _model(ref)


def judge_encoded(ref: ModelRef, image: bytes, max_pixels: int) -> Judged:
    """Decode and inspect one image (in a worker); InvalidArgument names ``image``."""
    started = time.perf_counter()
    pixels = decode_gray(image, "image", max_pixels=max_pixels)
    inspection = _INSPECTOR.inspect(_model(ref), pixels)
    height, width = pixels.shape
    return Judged(inspection, width, height, time.perf_counter() - started)


def _start_worker() -> None:
    # Ctrl-C reaches the whole process group; the serving process decides when its
    # workers stop (it drains in-flight calls first).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker waits on a queue it also holds the writing end of, so it would outlive a
    # serving process that was killed; it watches that process instead.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_after, args=(parent,), daemon=True).start()


def _exit_after(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(0)


class InspectionWorkers:
    """Judges encoded images on ``count`` workers; a pool whose process died is replaced."""

    def __init__(self, count: int, *, pool: InspectionPool, max_pixels: int) -> None:
        self._count = count
        self._pool = pool
        self._max_pixels = max_pixels
        self._lock = threading.RLock()  # warm() submits while holding it
        self._executor = self._new_executor()
        self._warming: tuple[Executor, tuple[ModelRef, ...], list[Future[None]]] | None = None
        self._started: Executor | None = None  # the pool whose workers have started

    def _new_executor(self) -> Executor:
        if self._pool == "threads":
            return ThreadPoolExecutor(self._count, thread_name_prefix="inspect")
        # Spawned, not forked: a fork of a process running gRPC's threads is unsafe.
        # Processes start when first given work (see ``warm``).
        return ProcessPoolExecutor(
            self._count,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
        )

    def submit(self, model: LoadedModel, image: bytes) -> Future[Judged]:
        return self._submit(judge_encoded, _ref(model), image, self._max_pixels)

    def warm(self, models: list[LoadedModel]) -> bool:
        """Starts the workers and has them load ``models``; True once the workers of the
        current pool have started. The readiness check calls it every round: the first
        call (and the first after the models or the pool changed) starts the loading,
        later ones look whether it is done and raise what stopped it (the next call
        starts it again). A replica takes images only when its workers can judge them at
        once: a cold worker needs seconds for its first image."""
        refs = tuple(_ref(model) for model in models)
        with self._lock:
            if self._warming is None or self._warming[:2] != (self._executor, refs):
                loading = [self._submit(_load, refs) for _ in range(self._count)]
                self._warming = (self._executor, refs, loading)
            executor, _, loading = self._warming
        if all(future.done() for future in loading):
            try:
                for future in loading:
                    self.result(future)
            except Exception:
                with self._lock:
                    self._warming = None
                raise
            with self._lock:
                self._started = executor
        return self._started is self._executor

    def _submit(self, work: Callable[..., Result], *args: object) -> Future[Result]:
        with self._lock:
            try:
                return self._executor.submit(work, *args)
            except BrokenProcessPool:
                # A worker died (killed, out of memory); its images were answered
                # UNAVAILABLE (see ``result``). Later images go to a fresh pool.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
                return self._executor.submit(work, *args)

    @staticmethod
    def result(future: Future[Result]) -> Result:
        try:
            return future.result()
        except BrokenProcessPool as error:
            raise Unavailable(
                "an inspection worker stopped before judging this image; send it again"
            ) from error

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
