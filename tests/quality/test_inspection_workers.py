"""Inspection workers: processes and threads judge alike, errors cross back intact, a pool
whose worker died is replaced, and warming up starts the workers before the first image."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.quality.datasets import blocked_split, neu_samples
from services.quality.domain.inspection.artifacts import ARRAYS
from services.quality.domain.inspection.images import DEFAULT_MAX_PIXELS
from services.quality.domain.inspection.inspector import LoadedModel, load_model
from services.quality.inspection_workers import InspectionWorkers
from services.quality.registry import SHIPPED_MODELS, ModelRegistry, memory_activations
from services.runtime.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Unavailable,
)
from tests.shared_data import shared_data


@pytest.fixture(scope="module")
def neu() -> LoadedModel:
    registry = ModelRegistry(
        shipped=SHIPPED_MODELS,
        trained=Path(tempfile.mkdtemp()) / "models",
        activations=memory_activations(),
    )
    return registry.active("neu-surface")


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    _, test = blocked_split(neu_samples(shared_data("neu_det")), 2 / 3)
    return [s.path.read_bytes() for s in test if s.number == 200]  # one per class


@pytest.fixture(scope="module")
def processes() -> Iterator[InspectionWorkers]:
    workers = InspectionWorkers(2, pool="processes", max_pixels=DEFAULT_MAX_PIXELS)
    yield workers
    workers.close()


def test_processes_and_threads_give_the_same_inspections(neu, images, processes):
    threads = InspectionWorkers(2, pool="threads", max_pixels=DEFAULT_MAX_PIXELS)
    try:
        for image in images:
            in_process = processes.result(processes.submit(neu, image))
            in_thread = threads.result(threads.submit(neu, image))
            assert in_process.inspection.defect_class  # every one of these is a defect
            assert in_process.inspection.probabilities == in_thread.inspection.probabilities
            assert in_process.inspection.boxes == in_thread.inspection.boxes
            assert (in_process.width, in_process.height) == (200, 200)
            assert in_process.inspection.model_version == neu.version
    finally:
        threads.close()


def test_a_bad_image_comes_back_from_a_worker_process_naming_the_field(neu, processes):
    with pytest.raises(InvalidArgument) as refused:
        processes.result(processes.submit(neu, b"not an image"))
    assert [v.field for v in refused.value.violations] == ["image"]


def test_invalid_argument_survives_pickling_with_its_violations():
    error = InvalidArgument([FieldViolation("image", "corrupt"), FieldViolation("model", "?")])
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 -- our own bytes
    assert copy.violations == error.violations
    assert str(copy) == str(error)


def test_a_killed_worker_fails_only_its_images_and_the_pool_is_replaced(neu, images):
    before = set(multiprocessing.active_children())
    workers = InspectionWorkers(1, pool="processes", max_pixels=DEFAULT_MAX_PIXELS)
    try:
        expected = workers.result(workers.submit(neu, images[0])).inspection.probabilities
        (worker,) = set(multiprocessing.active_children()) - before
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(timeout=10)
        outcomes: list[dict[str, float] | None] = []
        for _ in range(3):  # the first image after the kill may be the one that fails
            try:
                judged = workers.result(workers.submit(neu, images[0]))
                outcomes.append(judged.inspection.probabilities)
            except Unavailable:
                outcomes.append(None)
        assert outcomes[-1] == expected
        assert outcomes.count(None) <= 1
    finally:
        workers.close()


def warmed(workers: InspectionWorkers, models: list[LoadedModel]) -> bool:
    """Asks as the readiness check does, every round, until ready (or 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if workers.warm(models):
            return True
        time.sleep(0.05)
    return False


def test_warming_starts_every_worker_before_the_first_image(neu):
    before = set(multiprocessing.active_children())
    workers = InspectionWorkers(2, pool="processes", max_pixels=DEFAULT_MAX_PIXELS)
    try:
        assert not workers.warm([neu])  # the workers are starting
        assert warmed(workers, [neu])
        assert len(set(multiprocessing.active_children()) - before) == 2
        # Another model version (a promotion) loads behind a replica that stays ready.
        tile = load_model(next((SHIPPED_MODELS / "magnetic-tile").iterdir()))
        assert workers.warm([neu, tile])
    finally:
        workers.close()


def test_a_model_changed_on_disk_stops_the_warm_up_until_it_is_whole_again(neu, tmp_path):
    copy = tmp_path / neu.name / neu.version
    shutil.copytree(neu.directory, copy)
    model = load_model(copy)
    original = (copy / ARRAYS).read_bytes()
    (copy / ARRAYS).write_bytes(original[:-10])  # truncated after the service loaded it
    workers = InspectionWorkers(1, pool="threads", max_pixels=DEFAULT_MAX_PIXELS)
    try:
        with pytest.raises(FailedPrecondition, match="does not match the sha256"):
            warmed(workers, [model])
        (copy / ARRAYS).write_bytes(original)
        assert warmed(workers, [model])
    finally:
        workers.close()


OWNER = """
import sys
from services.quality.domain.inspection.inspector import load_model
from services.quality.inspection_workers import InspectionWorkers

if __name__ == "__main__":
    workers = InspectionWorkers(2, pool="processes", max_pixels=4_000_000)
    model = load_model(__import__("pathlib").Path(sys.argv[1]))
    while not workers.warm([model]):
        __import__("time").sleep(0.05)
    import multiprocessing
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    __import__("time").sleep(600)
"""


def test_workers_of_a_killed_serving_process_exit_too(neu, tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    owner = subprocess.Popen(
        [sys.executable, str(script), str(neu.directory)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert owner.stdout is not None
        pids = [int(pid) for pid in owner.stdout.readline().split()]
        assert len(pids) == 2  # its two workers
    finally:
        owner.kill()  # no shutdown runs: SIGKILL
        owner.wait(timeout=10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child of this test reaped by no one still answers: look at its state.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()
