"""Tabu search on the machine orders of a job shop (see ``tabu_kernel``).

It serves the problems it models exactly: one machine per operation, no setups, no
downtime, nothing fixed in place, makespan as the objective. There it finds shorter
schedules in a few seconds than CP-SAT's search does with the same threads (measured by
bench/scheduling.py), while CP-SAT keeps what only it gives: proofs and bounds.

The kernel is compiled by numba on first use (cached on disk); ``warm_up`` does it ahead
of the first request, and ``ready()`` tells the solver whether to rely on it yet.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from services.scheduling.domain.indexed import Indexed
from services.scheduling.domain.model import Assignment

# Iterations between looks at the clock: about a millisecond on the largest problems.
CHUNK = 200
_compiled = threading.Event()
_compiling = threading.Lock()


def compile_in_background() -> None:
    """Start compiling the kernel (seconds; a fraction of one from numba's cache) on a
    thread of its own, once; the service does this at start, so no call waits for it."""
    if not _compiled.is_set() and _compiling.acquire(blocking=False):
        threading.Thread(target=warm_up, name="tabu-compile", daemon=True).start()


def ready() -> bool:
    """Whether the kernel is compiled (asking starts compiling it, as above)."""
    compile_in_background()
    return _compiled.is_set()


def warm_up() -> None:
    """Compile the kernel (or load it from numba's cache) on a tiny problem."""
    search = Search(_Arrays.chain([3, 2], [0, 0]), [[0], [1]], seed=0)
    search.step(10, 0)
    search.best_starts()
    _compiled.set()


def applies(ix: Indexed) -> bool:
    """Whether the search models ``ix`` exactly (see the module docstring)."""
    return not ix.is_flexible and not ix.has_setups and not any(ix.downtime)


class _Arrays:
    """A problem as the kernel's arrays: durations, releases, conjunctive arcs (CSR)."""

    def __init__(
        self,
        durations: list[int],
        releases: list[int],
        preds: list[list[int]],
        succs: list[list[int]],
    ) -> None:
        self.n = len(durations)
        self.p = np.asarray(durations, dtype=np.int64)
        self.release = np.asarray(releases, dtype=np.int64)
        self.cp_ptr, self.cp_idx = _csr(preds)
        self.cs_ptr, self.cs_idx = _csr(succs)

    @classmethod
    def of(cls, ix: Indexed, not_before: int) -> _Arrays:
        return cls(
            [op.eligible[0][1] for op in ix.ops],
            [max(ix.release[op.job], not_before) for op in ix.ops],
            ix.preds,
            ix.succs,
        )

    @classmethod
    def chain(cls, durations: list[int], releases: list[int]) -> _Arrays:
        last = len(durations) - 1
        return cls(
            durations,
            releases,
            [[k - 1] if k else [] for k in range(last + 1)],
            [[k + 1] if k < last else [] for k in range(last + 1)],
        )


def _csr(lists: list[list[int]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    ptr = np.zeros(len(lists) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    flat = [k for x in lists for k in x]
    return ptr, np.asarray(flat, dtype=np.int64)


class Search:
    """One tabu-search walk, advanced a chunk of iterations at a time."""

    def __init__(self, arrays: _Arrays, machine_orders: list[list[int]], *, seed: int) -> None:
        # Imported here: numba's import alone takes about half a second, which a service
        # (or CLI) that never searches should not pay.
        from services.scheduling.domain import tabu_kernel as kernel

        self.kernel = kernel
        self.a = arrays
        n = arrays.n
        self.mpred = np.full(n, -1, dtype=np.int64)
        self.msucc = np.full(n, -1, dtype=np.int64)
        _link(machine_orders, self.mpred, self.msucc)
        self.best_mpred = self.mpred.copy()
        self.best_msucc = self.msucc.copy()
        self.state = np.zeros(kernel.STATE_SIZE, dtype=np.int64)
        self.state[kernel.BEST] = -1
        machines = max(1, len(machine_orders))
        # Tenure grows with the jobs-per-machine ratio, as in Taillard's tabu search.
        self.tenure = (10 + n // (machines * machines), 14 + 3 * n // (machines * machines))
        self.tabu = np.full((self.tenure[1], kernel.TABU_COLUMNS), -1, dtype=np.int64)
        self.restart_after = 2500 + 2 * n
        self.seed = seed
        self.calls = 0

    @property
    def best(self) -> int:
        return int(self.state[self.kernel.BEST])

    def step(self, iterations: int, lower_bound: int) -> bool:
        """Run up to ``iterations``; False once nothing better can be found."""
        a = self.a
        self.calls += 1
        done = self.kernel.search(
            a.p, a.release, a.cp_ptr, a.cp_idx, a.cs_ptr, a.cs_idx,
            self.mpred, self.msucc, self.best_mpred, self.best_msucc, self.tabu, self.state,
            iterations, self.seed * 1_000_003 + self.calls, lower_bound, self.restart_after,
            self.tenure[0], self.tenure[1],
        )  # fmt: skip
        return bool(done == iterations)

    def adopt(self, machine_orders: list[list[int]]) -> None:
        """Take these machine orders as the best schedule so far."""
        self.best_mpred[:] = -1
        self.best_msucc[:] = -1
        _link(machine_orders, self.best_mpred, self.best_msucc)
        self.state[self.kernel.BEST] = int((self.best_starts() + self.a.p).max())

    def best_starts(self) -> NDArray[np.int64]:
        a = self.a
        order = np.empty(a.n, dtype=np.int64)
        head = np.empty(a.n, dtype=np.int64)
        self.kernel.heads(
            a.p, a.release, a.cp_ptr, a.cp_idx, a.cs_ptr, a.cs_idx,
            self.best_mpred, self.best_msucc, order, head,
        )  # fmt: skip
        return head


def _link(
    machine_orders: list[list[int]], mpred: NDArray[np.int64], msucc: NDArray[np.int64]
) -> None:
    for order in machine_orders:
        for u, v in itertools.pairwise(order):
            msucc[u] = v
            mpred[v] = u


def machine_orders(ix: Indexed, assignments: tuple[Assignment, ...]) -> list[list[int]]:
    """Each machine's operations in the order of a schedule."""
    by_machine: dict[str, list[Assignment]] = defaultdict(list)
    for a in assignments:
        by_machine[a.machine_id].append(a)
    return [
        [ix.op_index[(a.job_id, a.operation_id)] for a in sorted(items, key=_order_key)]
        for items in by_machine.values()
    ]


def _order_key(a: Assignment) -> tuple[int, int]:
    # A zero-length operation at the instant another starts goes first.
    return (a.start, a.end)


def improve(
    ix: Indexed,
    start: tuple[Assignment, ...],
    *,
    deadline: float,
    seed: int,
    not_before: int = 0,
    lower_bound: Callable[[], int],
    on_improvement: Callable[[tuple[Assignment, ...]], None],
    should_stop: Callable[[], bool],
    incumbent: Callable[[], tuple[int, tuple[Assignment, ...]] | None] = lambda: None,
) -> None:
    """Walk from ``start`` until ``deadline`` (time.monotonic) or ``should_stop``,
    handing every improving schedule to ``on_improvement``. A better ``incumbent``
    (makespan and schedule, found by another walk) becomes this walk's best, where its
    next restart goes."""
    search = Search(_Arrays.of(ix, not_before), machine_orders(ix, start), seed=seed)
    reported = max(a.end for a in start) if start else None
    while time.monotonic() < deadline and not should_stop():
        going = search.step(CHUNK, lower_bound())
        if reported is None or search.best < reported:
            reported = search.best
            on_improvement(assignments_of(ix, search.best_starts()))
        if not going:
            return
        shared = incumbent()
        if shared is not None and shared[0] < search.best:
            search.adopt(machine_orders(ix, shared[1]))
            reported = search.best


def assignments_of(ix: Indexed, starts: NDArray[np.int64]) -> tuple[Assignment, ...]:
    return tuple(
        Assignment(
            op.job_id,
            op.operation_id,
            ix.machine_ids[op.eligible[0][0]],
            int(starts[k]),
            int(starts[k]) + op.eligible[0][1],
        )
        for k, op in enumerate(ix.ops)
    )
