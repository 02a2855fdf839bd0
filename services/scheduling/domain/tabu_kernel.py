"""Compiled core of the job-shop tabu search (numba, no Python objects, no GIL held).

A schedule is the disjunctive graph's machine orders, kept as linked lists: ``mpred``
and ``msucc`` give each operation's neighbours on its machine (-1 at either end).
Conjunctive arcs (job order and extra precedences) are in CSR form. Heads are the
earliest starts, tails the longest path from an operation's end to the schedule's end.

A move takes one operation of a block of consecutive critical operations on one
machine to the block's front or back (see ``_moves``). Moves are ranked by Balas and
Vazacopoulos' estimate: the longest path through the reordered stretch of the machine,
from the old heads and tails, so ranking a move costs the length of that stretch and only
the chosen one is applied exactly. Moves that might close a cycle are left out by their
test on the heads, and a cycle that still appears (zero-length operations) is undone.

Each call runs a fixed number of iterations and keeps its state in the arrays it is
given, so the caller can watch the clock and stream improvements between calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Indices into the int64 ``state`` array shared between calls.
ITERATION = 0
BEST = 1  # makespan of the best schedule so far
SINCE_BEST = 2  # iterations since the current schedule was last the best
TABU_NEXT = 3  # next slot of the circular tabu list
STATE_SIZE = 4
# Columns of the tabu list: operation a must not come just before operation b again until
# the iteration in the third column.
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
def _critical_path(p, cp_ptr, cp_idx, mpred, head, makespan, path):
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


FORWARD = 0  # move an operation to just after a later one on its machine
BACKWARD = 1  # move an operation to just before an earlier one


@njit(cache=True, nogil=True)
def _moves(path, length, msucc, moved, target, kind):
    """Moves on ``path``: within each block of consecutive operations on one machine, an
    operation to the block's front or to its back (the insertions of Balas and
    Vazacopoulos' and Zhang et al.'s neighbourhoods; the N5 swaps are among them). Not
    to the front of the first block nor the back of the last, which never shortens the
    path. Moving the first or last operation into a block's interior as well (N7) ranked
    worse on abz7-9 for its cost (measured by running both side by side)."""
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
        to_front = b > 0 or nblocks == 1
        to_back = b < nblocks - 1 or nblocks == 1
        if to_front:
            for i in range(s + 1, e + 1):
                moved[count], target[count], kind[count] = path[i], path[s], BACKWARD
                count += 1
        # In a block of two, moving the first to the back is the same swap as moving the
        # last to the front.
        if to_back and not (to_front and e - s == 1):
            for i in range(s, e):
                moved[count], target[count], kind[count] = path[i], path[e], FORWARD
                count += 1
    return count


@njit(cache=True, nogil=True, inline="always")
def _unlink(u, mpred, msucc):
    a = mpred[u]
    b = msucc[u]
    if a >= 0:
        msucc[a] = b
    if b >= 0:
        mpred[b] = a


@njit(cache=True, nogil=True)
def _move(u, v, kind, mpred, msucc):
    """Put ``u`` just after (FORWARD) or before (BACKWARD) ``v`` on their machine;
    returns the operation next to which ``u`` was, to undo it with the opposite kind."""
    if kind == FORWARD:
        undo = msucc[u]
        _unlink(u, mpred, msucc)
        w = msucc[v]
        msucc[v] = u
        mpred[u] = v
        msucc[u] = w
        if w >= 0:
            mpred[w] = u
    else:
        undo = mpred[u]
        _unlink(u, mpred, msucc)
        a = mpred[v]
        mpred[v] = u
        msucc[u] = v
        mpred[u] = a
        if a >= 0:
            msucc[a] = u
    return undo


@njit(cache=True, nogil=True, inline="always")
def _job_head(x, p, release, cp_ptr, cp_idx, head):
    """Earliest start of ``x`` allowed by its release and conjunctive predecessors."""
    r = release[x]
    for i in range(cp_ptr[x], cp_ptr[x + 1]):
        c = cp_idx[i]
        r = max(r, head[c] + p[c])
    return r


@njit(cache=True, nogil=True, inline="always")
def _job_tail(x, p, cs_ptr, cs_idx, tail):
    q = 0
    for i in range(cs_ptr[x], cs_ptr[x + 1]):
        s = cs_idx[i]
        q = max(q, p[s] + tail[s])
    return q


@njit(cache=True, nogil=True)
def _estimate(u, v, kind, p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, head, tail,
              seq, rr):  # fmt: skip
    """Longest path through the operations a move reorders, from the old heads and tails
    (Balas and Vazacopoulos), or -1 when the move might close a cycle. ``seq`` and ``rr``
    are scratch space."""
    # The reordered stretch of the machine, in its new order, into seq[0..m].
    m = 0
    if kind == FORWARD:
        x = msucc[u]
        while True:
            seq[m] = x
            m += 1
            if x == v:
                break
            x = msucc[x]
        seq[m] = u
        before = mpred[u]
        after = msucc[v]
        # A path from u's job successor to v would become a cycle; none exists when
        # that successor ends after v starts.
        for i in range(cs_ptr[u], cs_ptr[u + 1]):
            s = cs_idx[i]
            if head[v] >= head[s] + p[s]:
                return -1
    else:
        seq[0] = u
        m = 1
        x = v
        while x != u:
            seq[m] = x
            m += 1
            x = msucc[x]
        m -= 1
        before = mpred[v]
        after = msucc[u]
        for i in range(cp_ptr[u], cp_ptr[u + 1]):
            c = cp_idx[i]
            if head[c] >= head[v] + p[v]:
                return -1
    previous_end = head[before] + p[before] if before >= 0 else 0
    for i in range(m + 1):
        x = seq[i]
        rr[i] = max(_job_head(x, p, release, cp_ptr, cp_idx, head), previous_end)
        previous_end = rr[i] + p[x]
    following = p[after] + tail[after] if after >= 0 else 0
    longest = 0
    for i in range(m, -1, -1):
        x = seq[i]
        q = max(_job_tail(x, p, cs_ptr, cs_idx, tail), following)
        longest = max(longest, rr[i] + p[x] + q)
        following = p[x] + q
    return longest


@njit(cache=True, nogil=True)
def _is_tabu(u, v, kind, tabu, iteration):
    """Whether the move would put back an order recently undone: an entry (a, b) says
    that a must not come just before b again."""
    a, b = (v, u) if kind == FORWARD else (u, v)
    for i in range(tabu.shape[0]):
        if tabu[i, 0] == a and tabu[i, 1] == b and tabu[i, 2] > iteration:
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
    """Run ``iterations`` tabu-search steps from the schedule in ``mpred``/``msucc``;
    the best schedule found is kept in ``best_mpred``/``best_msucc`` and its makespan in
    ``state[BEST]``. Returns the iterations actually run (fewer when the lower bound is
    reached or no move exists, which proves the schedule optimal)."""
    # ``tabu`` has at least ``tenure_max`` rows: an entry is never overwritten while
    # it still forbids its move.
    np.random.seed(seed)
    n = p.shape[0]
    order = np.empty(n, np.int64)
    head = np.empty(n, np.int64)
    tail = np.empty(n, np.int64)
    path = np.empty(n, np.int64)
    seq = np.empty(n + 1, np.int64)
    rr = np.empty(n + 1, np.int64)
    moved = np.empty(2 * n, np.int64)
    target = np.empty(2 * n, np.int64)
    kind = np.empty(2 * n, np.int64)
    makespan = heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head)
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
                length = _critical_path(p, cp_ptr, cp_idx, mpred, head, makespan, path)
                if length < 2:
                    break
                k = np.random.randint(length - 1)
                u = path[k]
                v = path[k + 1]
                if msucc[u] != v:
                    continue
                undo = _move(u, v, FORWARD, mpred, msucc)
                m = heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head)
                if m < 0:
                    _move(u, undo, BACKWARD, mpred, msucc)
                    m = heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head)
                makespan = m
        _tails(p, cs_ptr, cs_idx, msucc, order, tail)
        length = _critical_path(p, cp_ptr, cp_idx, mpred, head, makespan, path)
        count = _moves(path, length, msucc, moved, target, kind)
        chosen = -1
        chosen_value = 0
        for i in range(count):
            value = _estimate(
                moved[i], target[i], kind[i], p, release, cp_ptr, cp_idx, cs_ptr, cs_idx,
                mpred, msucc, head, tail, seq, rr,
            )  # fmt: skip
            if value < 0:
                continue
            if _is_tabu(moved[i], target[i], kind[i], tabu, state[ITERATION]) and (
                value >= state[BEST]
            ):
                continue
            # Ties are broken at random so that plateaus are crossed.
            if (
                chosen < 0
                or value < chosen_value
                or (value == chosen_value and np.random.randint(2) == 0)
            ):
                chosen, chosen_value = i, value
        if count == 0:
            if makespan <= state[BEST]:
                # The critical path is one job or one machine's work: nothing is shorter.
                return step
            state[SINCE_BEST] = restart_after
            continue
        if chosen < 0:
            chosen = np.random.randint(count)
        u, v, k = moved[chosen], target[chosen], kind[chosen]
        undo = _move(u, v, k, mpred, msucc)
        m = heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head)
        if m < 0:
            # The move closed a cycle: undo it and try elsewhere after a restart.
            _move(u, undo, BACKWARD if k == FORWARD else FORWARD, mpred, msucc)
            makespan = heads(p, release, cp_ptr, cp_idx, cs_ptr, cs_idx, mpred, msucc, order, head)
            state[SINCE_BEST] += 1
            continue
        makespan = m
        # Forbid undoing the move for a while (a random tenure): u must not come just
        # after the operation it preceded (FORWARD) or before the one it followed.
        slot = state[TABU_NEXT]
        if k == FORWARD:
            tabu[slot, 0], tabu[slot, 1] = u, undo
        else:
            tabu[slot, 0], tabu[slot, 1] = undo, u
        tabu[slot, 2] = (
            state[ITERATION] + tenure_min + np.random.randint(tenure_max - tenure_min + 1)
        )
        state[TABU_NEXT] = (slot + 1) % tabu.shape[0]
        state[ITERATION] += 1
        state[SINCE_BEST] += 1
        if makespan < state[BEST]:
            state[BEST] = makespan
            state[SINCE_BEST] = 0
            best_mpred[:] = mpred
            best_msucc[:] = msucc
    return iterations
