"""Compiled core of the job-shop tabu search (numba, no Python objects, no GIL held).

A schedule is the disjunctive graph's machine orders, kept as linked lists: ``mpred``
and ``msucc`` give each operation's neighbours on its machine (-1 at either end).
Conjunctive arcs (job order and extra precedences) are in CSR form. Heads are the
earliest starts, tails the longest path from an operation's end to the schedule's end.

The neighbourhood is Nowicki and Smutnicki's N5: on one critical path, swap the first
two or the last two operations of each block of consecutive operations on one machine
(not the first pair of the first block nor the last pair of the last block, which never
shorten the path). Moves are ranked by the estimate of Taillard / Balas-Vazacopoulos:
the longest path through the swapped pair after the swap, from the old heads and tails,
so one move costs O(1) to rank and only the chosen one is applied exactly.

Each call runs a fixed number of iterations and keeps its state in the arrays it is
given, so the caller can watch the clock and stream improvements between calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Indices into the int64 ``state`` array shared between calls.
ITERATION = 0
BEST = 1  # makespan of the best schedule so far
CURRENT = 2  # makespan of the current schedule
SINCE_BEST = 3  # iterations since the current schedule was last the best
TABU_NEXT = 4  # next slot of the circular tabu list
STATE_SIZE = 5
# Columns of the tabu list: a pair (u, v) must not be put back in that order until the
# iteration in the third column.
TABU_COLUMNS = 3


@njit(cache=True, nogil=True, inline="always")
def _reach(s, end, head, indegree, order, count):
    """Arc into ``s`` from an operation ending at ``end``; ``s`` joins the order once all
    its predecessors are placed. Returns the new length of the order."""
    if end > head[s]:
        head[s] = end
    indegree[s] -= 1
    if indegree[s] == 0:
        order[count] = s
        count += 1
    return count


@njit(cache=True, nogil=True)
def heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head):
    """Earliest starts into ``head`` and a topological order into ``order``; returns the
    makespan, or -1 when the machine orders close a cycle."""
    n = p.shape[0]
    indegree = np.empty(n, np.int64)
    count = 0
    for v in range(n):
        indegree[v] = cp_ptr[v + 1] - cp_ptr[v] + (1 if mpred[v] >= 0 else 0)
        head[v] = release[v]
        if indegree[v] == 0:
            order[count] = v
            count += 1
    done = 0
    makespan = 0
    while done < count:
        v = order[done]
        done += 1
        end = head[v] + p[v]
        if end > makespan:
            makespan = end
        for i in range(cs_ptr[v], cs_ptr[v + 1]):
            count = _reach(cs_idx[i], end, head, indegree, order, count)
        if msucc[v] >= 0:
            count = _reach(msucc[v], end, head, indegree, order, count)
    if count < n:
        return -1
    return makespan


@njit(cache=True, nogil=True)
def _tails(p, cs_ptr, cs_idx, msucc, order, tail):
    n = p.shape[0]
    for i in range(n - 1, -1, -1):
        v = order[i]
        t = 0
        for j in range(cs_ptr[v], cs_ptr[v + 1]):
            s = cs_idx[j]
            if p[s] + tail[s] > t:
                t = p[s] + tail[s]
        s = msucc[v]
        if s >= 0 and p[s] + tail[s] > t:
            t = p[s] + tail[s]
        tail[v] = t


@njit(cache=True, nogil=True)
def _critical_path(p, release, cp_ptr, cp_idx, mpred, head, makespan, path):
    """One critical path, first operation first, into ``path``; returns its length."""
    n = p.shape[0]
    # Among operations ending last, a random one: ties give the search other paths.
    last = -1
    seen = 0
    for v in range(n):
        if head[v] + p[v] == makespan:
            seen += 1
            if np.random.randint(seen) == 0:
                last = v
    length = 0
    v = last
    while v >= 0:
        path[length] = v
        length += 1
        u = mpred[v]
        if u >= 0 and head[u] + p[u] == head[v]:
            v = u
            continue
        nxt = -1
        for i in range(cp_ptr[v], cp_ptr[v + 1]):
            c = cp_idx[i]
            if head[c] + p[c] == head[v]:
                nxt = c
                break
        v = nxt
    path[:length] = path[:length][::-1].copy()
    return length


@njit(cache=True, nogil=True)
def _moves(path, length, mpred, msucc, first, second):
    """N5 moves on ``path``: pairs (first[i], second[i]) adjacent on a machine."""
    count = 0
    start = 0
    nblocks = 0
    # Blocks: runs of path operations linked by machine arcs.
    block_start = np.empty(length, np.int64)
    block_end = np.empty(length, np.int64)
    for i in range(1, length + 1):
        if i == length or msucc[path[i - 1]] != path[i]:
            block_start[nblocks] = start
            block_end[nblocks] = i - 1
            nblocks += 1
            start = i
    for b in range(nblocks):
        s, e = block_start[b], block_end[b]
        if e - s < 1:
            continue
        with_first = b > 0 or nblocks == 1
        if with_first:
            first[count] = path[s]
            second[count] = path[s + 1]
            count += 1
        # In a block of two the last pair is the first one.
        if (b < nblocks - 1 or nblocks == 1) and not (with_first and e - 1 == s):
            first[count] = path[e - 1]
            second[count] = path[e]
            count += 1
    return count


@njit(cache=True, nogil=True)
def _swap(u, v, mpred, msucc):
    """Swap ``u`` and its machine successor ``v``."""
    a = mpred[u]
    b = msucc[v]
    if a >= 0:
        msucc[a] = v
    mpred[v] = a
    msucc[v] = u
    mpred[u] = v
    msucc[u] = b
    if b >= 0:
        mpred[b] = u


@njit(cache=True, nogil=True)
def _estimate(u, v, p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, head, tail):
    """Longest path through ``u`` or ``v`` once ``v`` goes before ``u``."""
    a = mpred[u]
    b = msucc[v]
    rv = release[v]
    for i in range(cp_ptr[v], cp_ptr[v + 1]):
        c = cp_idx[i]
        rv = max(rv, head[c] + p[c])
    if a >= 0:
        rv = max(rv, head[a] + p[a])
    ru = release[u]
    for i in range(cp_ptr[u], cp_ptr[u + 1]):
        c = cp_idx[i]
        ru = max(ru, head[c] + p[c])
    ru = max(ru, rv + p[v])
    qu = 0
    for i in range(cs_ptr[u], cs_ptr[u + 1]):
        s = cs_idx[i]
        qu = max(qu, p[s] + tail[s])
    if b >= 0:
        qu = max(qu, p[b] + tail[b])
    qv = 0
    for i in range(cs_ptr[v], cs_ptr[v + 1]):
        s = cs_idx[i]
        qv = max(qv, p[s] + tail[s])
    qv = max(qv, qu + p[u])
    return max(rv + p[v] + qv, ru + p[u] + qu)


@njit(cache=True, nogil=True)
def _is_tabu(u, v, tabu, iteration):
    for i in range(tabu.shape[0]):
        if tabu[i, 0] == u and tabu[i, 1] == v and tabu[i, 2] > iteration:
            return True
    return False


@njit(cache=True, nogil=True)
def search(
    p,
    release,
    cp_ptr,
    cp_idx,
    cs_ptr,
    cs_idx,
    mpred,
    msucc,
    best_mpred,
    best_msucc,
    tabu,
    state,
    iterations,
    seed,
    lower_bound,
    restart_after,
    tenure_min,
    tenure_max,
):
    # ``tabu`` has at least ``tenure_max`` rows: an entry is never overwritten while
    # it still forbids its move.
    """Run ``iterations`` tabu-search steps from the schedule in ``mpred``/``msucc``;
    the best schedule found is kept in ``best_mpred``/``best_msucc`` and its makespan in
    ``state[BEST]``. Returns the iterations actually run (fewer when the lower bound is
    reached or no move exists, which proves the schedule optimal)."""
    np.random.seed(seed)
    n = p.shape[0]
    order = np.empty(n, np.int64)
    head = np.empty(n, np.int64)
    tail = np.empty(n, np.int64)
    path = np.empty(n, np.int64)
    first = np.empty(2 * n, np.int64)
    second = np.empty(2 * n, np.int64)
    makespan = heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head)
    state[CURRENT] = makespan
    if state[BEST] < 0 or makespan < state[BEST]:
        state[BEST] = makespan
        best_mpred[:] = mpred
        best_msucc[:] = msucc
    for step in range(iterations):
        if state[BEST] <= lower_bound:
            return step
        if state[SINCE_BEST] >= restart_after:
            # Stuck: back to the best schedule, shaken by a few random critical swaps.
            mpred[:] = best_mpred
            msucc[:] = best_msucc
            tabu[:, :] = -1
            state[SINCE_BEST] = 0
            makespan = heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head)
            for _ in range(2 + np.random.randint(4)):
                length = _critical_path(p, release, cp_ptr, cp_idx, mpred, head, makespan, path)
                if length < 2:
                    break
                k = np.random.randint(length - 1)
                u = path[k]
                v = path[k + 1]
                if msucc[u] != v:
                    continue
                _swap(u, v, mpred, msucc)
                m = heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head)
                if m < 0:
                    _swap(v, u, mpred, msucc)
                    m = heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head)
                makespan = m
        _tails(p, cs_ptr, cs_idx, msucc, order, tail)
        length = _critical_path(p, release, cp_ptr, cp_idx, mpred, head, makespan, path)
        count = _moves(path, length, mpred, msucc, first, second)
        if count == 0:
            if makespan <= state[BEST]:
                # The critical path is one job or one machine's work: nothing is shorter.
                return step
            state[SINCE_BEST] = restart_after
            continue
        chosen = -1
        chosen_value = 0
        for i in range(count):
            value = _estimate(
                first[i], second[i], p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc,
                head, tail,
            )  # fmt: skip
            if _is_tabu(first[i], second[i], tabu, state[ITERATION]) and value >= state[BEST]:
                continue
            # Ties are broken at random so that plateaus are crossed.
            if (
                chosen < 0
                or value < chosen_value
                or (value == chosen_value and np.random.randint(2) == 0)
            ):
                chosen, chosen_value = i, value
        if chosen < 0:
            chosen = np.random.randint(count)
        u, v = first[chosen], second[chosen]
        _swap(u, v, mpred, msucc)
        m = heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head)
        if m < 0:
            # Only zero-length operations let a critical swap close a cycle.
            _swap(v, u, mpred, msucc)
            makespan = heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head)
        else:
            makespan = m
            # Forbid putting u back before v for a while (a random tenure): that is the
            # move swapping v and its new successor u.
            slot = state[TABU_NEXT]
            tabu[slot, 0] = v
            tabu[slot, 1] = u
            tabu[slot, 2] = (
                state[ITERATION] + tenure_min + np.random.randint(tenure_max - tenure_min + 1)
            )
            state[TABU_NEXT] = (slot + 1) % tabu.shape[0]
        state[ITERATION] += 1
        state[CURRENT] = makespan
        state[SINCE_BEST] += 1
        if makespan < state[BEST]:
            state[BEST] = makespan
            state[SINCE_BEST] = 0
            best_mpred[:] = mpred
            best_msucc[:] = msucc
    return iterations
