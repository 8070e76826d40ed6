"""Dedupe (greedy clustering of a target's valid samples) and selection (nearest the seed, or
farthest-point order) of the kernels."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .jit import _jit, _jit_par


@_jit
def _joint_distance(qa, qb, periodic):
    """Max over joints of |qa - qb|, modulo 2*pi for periodic joints."""
    two_pi = 2.0 * math.pi
    best = 0.0
    for k in range(qa.shape[0]):
        d = abs(qa[k] - qb[k])
        if periodic[k]:
            d = d % two_pi
            d = min(d, two_pi - d)
        best = max(best, d)
    return best

@_jit
def _representatives_one(b, q, err, ok, labels, periodic, tol, rep, count):
    """Greedy clustering of target b's valid samples, lowest error first: rep[b, s] marks the
    first (best) sample of each cluster, count[b, s] its members; returns the singletons.
    Samples with different labels are never in one cluster."""
    S = q.shape[1]
    order = np.argsort(err[b])  # inf (invalid) last
    reps = np.empty(S, dtype=np.int64)
    n = 0
    for j in range(S):
        s = order[j]
        if not ok[b, s]:
            continue
        hit = -1
        for r in range(n):
            if labels[b, s] == labels[b, reps[r]] and _joint_distance(q[b, s], q[b, reps[r]], periodic) <= tol:
                hit = reps[r]
                break
        if hit >= 0:
            count[b, hit] += 1
        else:
            reps[n] = s
            n += 1
            rep[b, s] = True
            count[b, s] = 1
    singles = 0
    for r in range(n):
        if count[b, reps[r]] == 1:
            singles += 1
    return singles

@_jit_par
def _representatives_parallel(q, err, ok, labels, periodic, tol, rep, count, singletons):
    for b in nb.prange(q.shape[0]):
        singletons[b] = _representatives_one(b, q, err, ok, labels, periodic, tol, rep, count)

@_jit
def _representatives_serial(q, err, ok, labels, periodic, tol, rep, count, singletons):
    for b in range(q.shape[0]):
        singletons[b] = _representatives_one(b, q, err, ok, labels, periodic, tol, rep, count)

@_jit
def _select_one(b, q, rep, seed, has_seed, periodic, K, chosen, valid):
    S, dof = q.shape[1], q.shape[2]
    cand = np.empty(S, dtype=np.int64)
    n = 0
    for s in range(S):
        if rep[b, s]:
            cand[n] = s
            n += 1
    if n == 0:
        return
    if has_seed:  # nearest the seed (Euclidean joint distance) first
        dist = np.empty(n)
        for j in range(n):
            acc = 0.0
            for k in range(dof):
                d = q[b, cand[j], k] - seed[b, k]
                acc += d * d
            dist[j] = acc
        order = np.argsort(dist, kind="mergesort")
        for j in range(min(K, n)):
            chosen[b, j] = cand[order[j]]
            valid[b, j] = True
        return
    # farthest-point order from the first candidate: most diverse first
    min_d = np.full(n, math.inf)
    taken = np.zeros(n, dtype=np.bool_)
    cur = 0
    for j in range(min(K, n)):
        chosen[b, j] = cand[cur]
        valid[b, j] = True
        taken[cur] = True
        nxt, far = -1, -1.0
        for m in range(n):
            if taken[m]:
                continue
            d = _joint_distance(q[b, cand[m]], q[b, cand[cur]], periodic)
            if d < min_d[m]:
                min_d[m] = d
            if min_d[m] > far:
                far, nxt = min_d[m], m
        if nxt < 0:
            break
        cur = nxt

@_jit_par
def _select_parallel(q, rep, seed, has_seed, periodic, K, chosen, valid):
    for b in nb.prange(q.shape[0]):
        _select_one(b, q, rep, seed, has_seed, periodic, K, chosen, valid)

@_jit
def _select_serial(q, rep, seed, has_seed, periodic, K, chosen, valid):
    for b in range(q.shape[0]):
        _select_one(b, q, rep, seed, has_seed, periodic, K, chosen, valid)
