"""The solver: :class:`IKSolver` (see the package docstring for its pipeline)."""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import kernels
from ..kinematics.branches import ur_kinematics
from ..kinematics.chain import KinematicChain
from ..kinematics.limits import nearest_periodic_copy
from ..kinematics.transforms import quaternion_to_matrix
from ..kinematics.ur_analytic import UR_DH, ur_arm_plane_offset, ur_branch_ids_numpy, ur_branch_ids_of_solutions
from ..models.generators import IKGenerator
from .options import IKResult, SolverOptions
from .single_request import _cpu_has_fast_bf16, _NumpySampler, _serial_blas
from .torch_backend import pose_error, refine

__all__ = ["IKSolver", "refined_answers"]


@dataclass
class _Slab:
    """One batch of refined samples in the pool of a solve call, (B, S) per field."""

    q: np.ndarray  # (B, S, dof) refined, wrapped joint values (NaN: not sampled)
    pe: np.ndarray  # (B, S) position error, metres (inf: not sampled)
    oe: np.ndarray  # (B, S) orientation error, radians
    ok: np.ndarray  # (B, S) valid: within limits and tolerances
    label: np.ndarray  # (B, S) int64 configuration class (-1: none or invalid)
    tried: np.ndarray  # (B, S) partners already tried (see IKSolver._partner_slab)

    @classmethod
    def empty(cls, B: int, S: int, dof: int) -> "_Slab":
        return cls(np.full((B, S, dof), np.nan), np.full((B, S), np.inf), np.full((B, S), np.inf), np.zeros((B, S), dtype=np.bool_), np.full((B, S), -1, dtype=np.int64), np.zeros((B, S), dtype=np.bool_))


def _sample_again(found, prev_found, singletons, K: int, unique_classes: int, last_regular: bool):
    """Which targets get another round: bool (B,) from the (B,) counts.

    Sample again only targets short of K for which a solution seen just once suggests unseen
    ones (Good-Turing: the chance that the next sample finds a new solution is about singletons /
    samples).  A target whose every solution was hit several times has fewer distinct solutions
    than asked (e.g. at most 8 for a 6-DoF UR pose); a position target has a continuum, so every
    sample is new and it reaches K.  A round that still found new solutions, or none at all yet,
    is followed by another one.  With ``unique_classes`` C > 0 (a branch model, at most one
    solution per branch) the model asked every branch: one without a solution after that most
    likely has none for this target, so continue only while rounds still find new ones.  After
    the last regular round (``last_regular``), only targets without any solution go on (rescue).
    """
    if unique_classes:
        more = (found < min(K, unique_classes)) & ((found > prev_found) | (found == 0))
    else:
        more = (found < K) & ((singletons > 0) | (found > prev_found) | (found == 0))
    if last_regular:
        more &= found == 0
    return more


def _ur_elbow_mirror(q: np.ndarray, spec: str) -> np.ndarray:
    """The other elbow solution of UR joint values (N, 6) for the same tool pose.

    Shoulder lift, elbow and wrist 1 turn about parallel axes: a planar two-link arm (a2, a3)
    reaching the wrist, whose mirror image (elbow -q3, the upper arm turned to reach the same
    point, wrist 1 keeping their sum) reaches the same pose.
    """
    dh = UR_DH[spec]
    m = q.copy()
    q2, q3 = q[:, 1], q[:, 2]
    m[:, 2] = -q3
    m[:, 1] = q2 + 2.0 * np.arctan2(dh.a3 * np.sin(q3), dh.a2 + dh.a3 * np.cos(q3))
    m[:, 3] = q2 + q3 + q[:, 3] - m[:, 1] - m[:, 2]
    return m


def _as_array(x) -> np.ndarray:
    """float64 numpy view (or copy) of a tensor / array-like."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


class IKSolver:
    """Multi-solution IK for one chain from a trained inverse model (thread-safe).

    Args:
        model: trained :class:`IKGenerator` for ``chain`` (position or pose targets).
        chain: the kinematic chain (real joint limits, FK, Jacobian).
        seed: RNG seed of the latent draws (deterministic answers for equal requests).
        sample_dtype: precision of the network's inference for samples that are refined
            afterwards: ``"bfloat16"`` halves the weights' memory traffic and runs 1.8-2.5x faster
            on CPUs with native bf16 matrix units (the samples move by ~0.01 rad, which refinement
            removes); ``"auto"`` picks it where the CPU has them.  Unrefined requests always use
            the model's own precision.
        backend: ``"kernel"``: refinement, filtering, dedupe and ranking in compiled per-sample
            loops (:mod:`cemssl_ik.kernels`, numba; about 10x the torch path's throughput on a
            CPU); ``"torch"``: the same pipeline as batched torch ops; ``"auto"``: the kernel
            when numba is importable.  Both give solutions meeting the same tolerances.
    """

    def __init__(self, model: IKGenerator, chain: KinematicChain, seed: int = 0, backend: str = "auto", sample_dtype: str = "auto") -> None:
        if backend not in ("auto", "kernel", "torch"):
            raise ValueError(f"backend must be 'auto', 'kernel' or 'torch', got {backend!r}")
        if backend == "kernel" and not kernels.AVAILABLE:
            raise RuntimeError("backend 'kernel' needs numba (pip install numba; it is in requirements.txt)")
        self.model = model.eval()
        self.chain = chain
        self._lock = threading.Lock()
        self._seed = seed
        self._periodic = torch.as_tensor(chain.periodic)
        #: "kernel" (compiled per-sample loops, see :mod:`cemssl_ik.kernels`) or "torch" (batched lock-step)
        self.backend = "kernel" if (backend == "kernel" or (backend == "auto" and kernels.AVAILABLE)) else "torch"
        self._consts = kernels.chain_arrays(chain) if self.backend == "kernel" else None
        if sample_dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"sample_dtype must be 'auto', 'float32' or 'bfloat16', got {sample_dtype!r}")
        if sample_dtype == "auto":
            sample_dtype = "bfloat16" if (self.model.device.type == "cpu" and _cpu_has_fast_bf16()) else "float32"
        #: dtype of the network when its samples are refined afterwards (unrefined requests use the model as trained)
        self.sample_dtype = sample_dtype
        self._refine_model = copy.deepcopy(self.model).to(torch.bfloat16).eval() if sample_dtype == "bfloat16" else self.model
        self._numpy_sampler = _NumpySampler.build(self.model)
        self._learning_limits = chain.learning_limits()
        # (UR model, frame) where the chain has a UR arm's kinematics, whatever its names: its
        # solutions have configuration classes, and its folds and wrist flip are known
        labeler = getattr(self.model, "branch_labeler", None)
        first = (labeler.spec,) if labeler is not None and labeler.spec in UR_DH else ()
        self._ur = ur_kinematics(chain, first + tuple(k for k in UR_DH if k not in first))
        self._is_ur = self._ur is not None

    def warmup(self) -> float:
        """Compile / load the kernels and run the model once per target kind, so that the first real
        request does not pay for it (numba compiles on first use, ~10 s, or loads its on-disk cache,
        ~1 s).  Returns the seconds it took."""
        t0 = time.perf_counter()
        q = self.chain.sample_configurations(2, torch.Generator().manual_seed(0))
        fk = self.chain.forward(q)
        for rot in (fk.rotation, None):
            for b in (1, 2 * kernels.SERIAL_BELOW):  # serial and parallel kernel variants
                idx = torch.arange(b) % 2
                self.solve(fk.position[idx], None if rot is None else rot[idx], options=SolverOptions(num_solutions=1, max_rounds=1, rescue_rounds=0, min_samples=1, oversample=1, max_samples=1))
        if self.backend == "kernel":  # the partner kernel runs only near singularities: compile it now
            kernels.partner_starts(self._consts, q.numpy(), fk.position.numpy(), fk.rotation.numpy())
        return time.perf_counter() - t0

    def _wrap(self, q: torch.Tensor) -> torch.Tensor:
        return torch.where(self._periodic, torch.remainder(q + math.pi, 2 * math.pi) - math.pi, q)

    def _plan(self, opt: SolverOptions, pose: bool) -> tuple[bool, int, float, int, int]:
        """Samples per target and round: (unique, S, random_fraction, uniform, from the model)."""
        K, m = opt.num_solutions, self.model
        C = m.num_classes
        over = opt.position_oversample if (not pose and self.chain.dof > 3) else opt.oversample
        # a branch model for a pose target of an arm with at most one solution per branch: once
        # every branch has a solution there is no other, and no more than C can be asked for
        unique = C > 0 and pose and m.config.target == "pose" and m.branch_labeler.unique_pose_solution
        S = max(min(math.ceil(over * (min(K, C) if unique else K)), opt.max_samples), opt.min_samples)
        rf = opt.random_fraction if opt.random_fraction is not None else (0.0 if C else 0.75)
        n_rand = int(round(rf * S)) if opt.refine else 0
        n_model = S - n_rand
        if m.noise_dim == 0:
            # a deterministic model has one answer per branch class and member: more are copies
            n_model = min(n_model, max(C, 1) * m.num_members)
            S = n_model + n_rand
        return unique, S, rf, n_rand, n_model

    def solve(
        self,
        position: torch.Tensor,
        rotation: torch.Tensor | None = None,
        seed: torch.Tensor | None = None,
        options: SolverOptions | None = None,
    ) -> IKResult:
        """Solve B targets.

        Args:
            position: (B, 3) metres in the chain base frame (tensor or array).
            rotation: (B, 3, 3) for pose targets; None for position targets.
            seed: (dof,) or (B, dof) joint values: ranks solutions and picks 2*pi copies.
            options: solver options.
        """
        # The bookkeeping is numpy: a single request's many small steps cost several times more as
        # torch operations.  The per-sample work runs in the compiled kernels or as batched torch.
        opt = options or SolverOptions()
        position = _as_array(position)
        if position.ndim != 2 or position.shape[-1] != 3 or not np.isfinite(position).all():
            raise ValueError(f"position must be a finite (B, 3) tensor, got shape {tuple(position.shape)}")
        B, dof = position.shape[0], self.chain.dof
        if rotation is not None:
            rotation = _as_array(rotation)
            if rotation.shape != (B, 3, 3) or not np.isfinite(rotation).all():
                raise ValueError(f"rotation must be a finite (B, 3, 3) tensor, got {tuple(rotation.shape)}")
        if seed is not None:
            seed = _as_array(seed)
            if seed.shape not in ((dof,), (B, dof)):
                raise ValueError(f"seed must have shape ({dof},) or ({B}, {dof}), got {tuple(seed.shape)}")
            if not np.isfinite(seed).all():
                raise ValueError(f"seed must be finite joint values (radians / metres), got {seed.tolist() if seed.size <= 16 else 'non-finite entries'}; leave it out (None) to solve without one")
            seed = np.broadcast_to(seed, (B, dof)).copy()
        # a single request's handful of samples: the calling thread does all the work, and BLAS
        # must not wake its thread pool for (16, 256) products (see _serial_blas)
        single = B * self._plan(opt, rotation is not None)[1] < kernels.SERIAL_BELOW
        with _serial_blas(single):
            return self._solve(position, rotation, seed, opt, single)

    def _solve(self, position: np.ndarray, rotation: np.ndarray | None, seed: np.ndarray | None, opt: SolverOptions, single: bool = False) -> IKResult:
        """:meth:`solve` on validated float64 arrays (``single``: a small solve, see :meth:`_draw`)."""
        B, K, dof = position.shape[0], opt.num_solutions, self.chain.dof
        ref = seed if seed is not None else np.zeros((B, dof))
        periodic = self.chain.periodic
        timings = {"sample": 0.0, "refine": 0.0, "select": 0.0}
        pools: list[_Slab] = []
        # UR pose targets: solutions of different configuration classes are never merged
        labels = self._is_ur and rotation is not None
        partners = opt.refine and opt.singular_steps and self.backend == "kernel" and (rotation is not None or dof <= 3)
        m = self.model
        unique, S, rf, n_rand, n_model = self._plan(opt, rotation is not None)
        C = m.num_classes
        todo = None  # None: every target (the first round); else the indices sampled this round
        found = np.zeros(B, dtype=np.int64)
        for round_ in range(opt.max_rounds + (opt.rescue_rounds if opt.refine else 0)):
            t0 = time.perf_counter()
            rescue = round_ >= opt.max_rounds
            if rescue and round_ == opt.max_rounds:
                S, n_rand, n_model = 2 * S, 2 * n_rand, 2 * n_model
            if round_ == 1 and opt.refine and (rf > 0 or m.noise_dim == 0):
                # Later rounds look for solutions the first one missed: mostly those the model does
                # not propose (mode collapse, or a branch model's wrong guess), so they draw uniform
                # samples only, which also spares the network's inference.
                n_rand, n_model = n_rand + n_model, 0
            pos_t = position if todo is None else position[todo]
            rot_t = None if rotation is None else (rotation if todo is None else rotation[todo])
            q = self._draw(pos_t, rot_t, S, n_model, n_rand, round_, opt, single)
            t1 = time.perf_counter()
            rows_t = np.arange(B) if todo is None else todo
            slab = self._refine_slab(q, rows_t, position, rotation, ref, B, opt, rescue)
            t2 = time.perf_counter()
            pools.append(slab)
            keep, singletons = self._representatives(pools, opt, labels)
            if partners:
                # solutions near a singularity come in pairs that LM rarely reaches from one
                # sample: start at each one's partner (see _partner_slab), then dedupe again
                for _ in range(2):
                    pslab = self._partner_slab(pools, keep, position, rotation, ref, opt)
                    if pslab is None:
                        break
                    pools.append(pslab)
                    keep, singletons = self._representatives(pools, opt, labels)
            timings["sample"] += t1 - t0
            timings["refine"] += t2 - t1
            timings["select"] += time.perf_counter() - t2
            prev_found, found = found, keep.sum(1)
            todo = np.flatnonzero(_sample_again(found, prev_found, singletons, K, C if unique else 0, round_ + 1 >= opt.max_rounds))
            if todo.size == 0:
                break
        pool_q, pool_pe, pool_oe = (np.concatenate([getattr(sl, f) for sl in pools], 1) for f in ("q", "pe", "oe"))
        t3 = time.perf_counter()
        if self.backend == "kernel":
            idx, sel_ok = kernels.select(pool_q, keep, seed, periodic, K)
        else:
            pool_lab = torch.from_numpy(np.concatenate([sl.label for sl in pools], 1)) if labels else None
            idx, sel_ok = (x.numpy() for x in self._select(torch.from_numpy(pool_q), torch.from_numpy(keep), None if seed is None else torch.from_numpy(seed), K, opt.distinct_tolerance, pool_lab))
        rows = np.arange(B)[:, None]
        sol = pool_q[rows, idx]
        sol[~sel_ok] = np.nan
        pe = np.where(sel_ok, pool_pe[rows, idx], np.nan)
        oe = np.where(sel_ok, pool_oe[rows, idx], np.nan)
        branch = np.full((B, K), -1, dtype=np.int64)
        if self._is_ur and sel_ok.any():
            if labels:  # already known for every valid pool entry
                branch = np.where(sel_ok, np.concatenate([sl.label for sl in pools], 1)[rows, idx], -1)
            else:
                branch[sel_ok] = ur_branch_ids_numpy(sol[sel_ok], self._ur[0])
        timings["select"] += time.perf_counter() - t3
        t = torch.from_numpy
        return IKResult(t(sol), t(sel_ok), t(pe), t(oe), t(branch), t(sel_ok.sum(1)), timings)

    def _kernel_options(self, opt: SolverOptions, rescue: bool) -> kernels.KernelOptions:
        return kernels.KernelOptions(
            iterations=opt.refine_iterations, give_up_after=-1 if rescue else opt.give_up_after, damping=opt.damping,
            initial_damping=opt.initial_damping, max_step=opt.max_step, position_tolerance=opt.position_tolerance,
            orientation_tolerance=opt.orientation_tolerance, refine=opt.refine, singular_steps=opt.singular_steps,
        )

    def _refine_slab(self, q: np.ndarray, rows: np.ndarray, position, rotation, ref, B: int, opt: SolverOptions, rescue: bool) -> _Slab:
        """Refine (optional), wrap and check start samples q (b, S, dof) of the targets ``rows`` (b,):
        a (B, S) slab of the pool (other targets' entries invalid)."""
        b, S, dof = q.shape
        flat = (q.reshape(b * S, dof), np.repeat(position[rows], S, axis=0), None if rotation is None else np.repeat(rotation[rows], S, axis=0), np.repeat(ref[rows], S, axis=0))
        if self.backend == "kernel":
            kq, kpe, koe, kok = kernels.refine_check(self._consts, *flat, self._kernel_options(opt, rescue))
        else:
            kq, kpe, koe, kok = self._torch_refine_check(*flat, opt, rescue)
        slab = _Slab.empty(B, S, dof)
        slab.q[rows], slab.pe[rows], slab.oe[rows], slab.ok[rows] = kq.reshape(b, S, dof), kpe.reshape(b, S), koe.reshape(b, S), kok.reshape(b, S)
        if self._is_ur and rotation is not None and slab.ok.any():
            tb, ts = np.nonzero(slab.ok)
            spec, frame = self._ur
            slab.label[tb, ts] = ur_branch_ids_of_solutions(slab.q[tb, ts], position[tb], rotation[tb], frame, spec)
        return slab

    def _representatives(self, pools: list[_Slab], opt: SolverOptions, labels: bool) -> tuple[np.ndarray, np.ndarray]:
        """(keep, singletons) of the whole pool: see :func:`kernels.distinct_representatives`."""
        q, pe, ok, lab = (np.concatenate([getattr(sl, f) for sl in pools], 1) for f in ("q", "pe", "ok", "label"))
        if self.backend == "kernel":
            return kernels.distinct_representatives(q, pe, ok, self.chain.periodic, opt.distinct_tolerance, lab if labels else None)
        t = torch.from_numpy
        keep, singletons = self._cell_representatives(t(q), t(pe), t(ok), t(lab) if labels else None, opt.distinct_tolerance)
        return keep.numpy(), singletons.numpy()

    def _partner_slab(self, pools: list[_Slab], keep: np.ndarray, position, rotation, ref, opt: SolverOptions) -> _Slab | None:
        """Refined starts at the partners of the near-singular representatives not tried yet, or None.

        Near a singularity two solutions of a pose come close (or meet): the shoulder and elbow
        pairs sit on either side of a fold, and the wrist-flip pair of a UR arm on a valley of
        near-solutions, half a turn of the wrist apart.  Samples there converge to either one
        (the model, whose regression is blurred across the singular set, rarely tells them
        apart), so each found solution also tries its partner: the fold's mirror point
        (:func:`kernels.partner_starts`) and, for the UR, the flipped wrist (wrist 1 and 3 by pi,
        wrist 2 negated).
        """
        sols, tbs, off = [], [], 0
        for sl in pools:  # the representatives not tried yet, slab by slab (no pool copy)
            S = sl.q.shape[1]
            new = keep[:, off : off + S] & ~sl.tried
            off += S
            if new.any():
                sl.tried |= new
                tb_s, ts_s = np.nonzero(new)
                sols.append(sl.q[tb_s, ts_s])
                tbs.append(tb_s)
        if not sols:
            return None
        sol, tb = (np.concatenate(x) if len(x) > 1 else x[0] for x in (sols, tbs))
        ur_pose = self._is_ur and rotation is not None
        if ur_pose:
            # the UR's folds and wrist flip are known: skip the SVD for solutions far from all of them
            spec = self._ur[0]
            fold = (np.abs(np.sin(sol[:, 2])) < 0.02) | (np.abs(ur_arm_plane_offset(sol, spec)) < 0.01)
            near = np.abs(np.sin(sol[:, 4])) < 0.01  # wrist 2 near 0 or pi
            if not (fold.any() or near.any()):
                return None
        else:
            fold = np.ones(tb.size, dtype=np.bool_)
        starts, has = kernels.partner_starts(self._consts, sol[fold], position[tb[fold]], None if rotation is None else rotation[tb[fold]])
        cand, owner = [starts[has]], [tb[fold][has]]
        if ur_pose:
            f = sol[near].copy()
            f[:, 3] += math.pi
            f[:, 4] = -f[:, 4]
            f[:, 5] += math.pi
            # the flipped start often converges to the other elbow's partner; the elbow mirror of
            # a solution is exact, so the next pass turns that one into the partner itself
            cand += [f, _ur_elbow_mirror(sol[near], spec)]
            owner += [tb[near], tb[near]]
        starts, owner = np.concatenate(cand), np.concatenate(owner)
        if owner.size == 0:
            return None
        # one column per start of the target with the most: (b, P, dof), NaN padding is invalid
        order = np.argsort(owner, kind="stable")
        starts, owner = starts[order], owner[order]
        rows, first, counts = np.unique(owner, return_index=True, return_counts=True)
        P = int(counts.max())
        col = np.arange(owner.size) - np.repeat(first, counts)
        grid = np.full((rows.size, P, self.chain.dof), np.nan)
        grid[np.searchsorted(rows, owner), col] = starts
        return self._refine_slab(grid, rows, position, rotation, ref, len(keep), opt, rescue=False)

    def _draw(self, pos: np.ndarray, rot: np.ndarray | None, S: int, n_model: int, n_rand: int, round_: int, opt: SolverOptions, single: bool = False) -> np.ndarray:
        """One round's start samples (b, S, dof): ``n_model`` from the network, then ``n_rand`` uniform
        (``single``: a small solve, whose uniform samples come from numpy's generator)."""
        b, dof, m = pos.shape[0], self.chain.dof, self.model
        q = np.empty((b, S, dof))
        # bf16 pays off from a few dozen samples; below that its conversions cost more than it
        # saves, and for a handful of samples numpy beats torch's per-operation overhead
        small = opt.refine and b * n_model < 32
        kind_matches = (rot is not None) == (m.config.target == "pose")
        with self._lock:
            gen = None
            if n_model and small and kind_matches and self._numpy_sampler is not None:
                rng = np.random.default_rng(self._seed + round_) if m.noise_dim else None
                q[:, :n_model] = self._numpy_sampler.sample(pos, rot, n_model, rng)
            elif n_model:
                model = self._refine_model if (opt.refine and not small) else m
                gen = torch.Generator(device=m.device).manual_seed(self._seed + round_)
                pos_t = torch.from_numpy(pos)
                if m.config.target == "pose" and rot is None:
                    # position request to a pose model: condition every sample on a random orientation
                    cond_R = quaternion_to_matrix(torch.randn(b, n_model, 4, generator=gen, dtype=torch.float64))
                else:
                    cond_R = torch.from_numpy(rot) if m.config.target == "pose" else None
                q[:, :n_model] = model.sample(pos_t, cond_R, n_model, generator=gen).q.double().cpu().numpy()
            if n_rand and single:
                # a single request's few uniform samples: numpy's generator costs a fraction of torch's
                lo, hi = self._learning_limits
                q[:, n_model:] = np.random.default_rng(self._seed + round_).uniform(lo, hi, (b, n_rand, dof))
            elif n_rand:
                gen = gen if gen is not None else torch.Generator(device=m.device).manual_seed(self._seed + round_)
                q[:, n_model:] = self.chain.sample_configurations(b * n_rand, gen, dtype=torch.float64).numpy().reshape(b, n_rand, dof)
        return q

    def _torch_refine_check(self, q, position, rotation, reference, opt: SolverOptions, rescue: bool) -> tuple[np.ndarray, ...]:
        """The torch backend's :func:`kernels.refine_check`: refine (optional), wrap, check."""
        t = torch.from_numpy
        flat_q, flat_p, flat_R = t(q), t(position), None if rotation is None else t(rotation)
        if opt.refine:
            flat_q = refine(
                self.chain, flat_q, flat_p, flat_R, opt.refine_iterations, opt.damping,
                give_up_after=None if rescue else opt.give_up_after, initial_damping=opt.initial_damping, max_step=opt.max_step,
            )
        flat_q, within = nearest_periodic_copy(flat_q, t(reference), self.chain.lower, self.chain.upper, self.chain.periodic)
        pe, oe = pose_error(self.chain, flat_q, flat_p, flat_R)
        ok = within & torch.isfinite(flat_q).all(-1) & (pe <= opt.position_tolerance) & (oe <= opt.orientation_tolerance)
        return flat_q.numpy(), pe.numpy(), oe.numpy(), ok.numpy()

    def _cell_representatives(self, q: torch.Tensor, err: torch.Tensor, ok: torch.Tensor, labels: torch.Tensor | None, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The lowest-error valid sample of each occupied joint-space grid cell of size ``tol``
        (and configuration class, where ``labels`` (B, S) are given).

        Returns:
            (rep, singletons): (B, S) mask of representatives, and (B,) the number of a target's
            cells that hold exactly one valid sample (solutions found only once so far).

        Refined samples of one solution agree to ~1e-10, so nearly all duplicates share a cell: one
        ``unique`` pass removes them.  Two representatives of neighbouring cells can still be
        closer than ``tol``; :meth:`_select` enforces exact distinctness among those it returns.
        """
        B, S, dof = q.shape
        qw = self._wrap(q)
        err_key = torch.where(ok, err, torch.full_like(err, math.inf))
        rep = torch.zeros(B * S, dtype=torch.bool)
        singletons = torch.zeros(B, dtype=torch.long)
        idx = torch.nonzero(ok.reshape(-1)).flatten()
        if idx.numel():
            cells = torch.floor(qw.reshape(-1, dof)[idx] / max(tol, 1e-12)).long()
            keys = torch.cat([(idx // S)[:, None], cells] + ([labels.reshape(-1)[idx][:, None]] if labels is not None else []), dim=1)
            _, inverse = torch.unique(keys, dim=0, return_inverse=True)
            # the lowest-error sample of each cell represents it: order by error, then (stably) by cell
            by_err = torch.argsort(err_key.reshape(-1)[idx], stable=True)
            by_cell = by_err[torch.argsort(inverse[by_err], stable=True)]
            cell_sorted = inverse[by_cell]
            first = torch.ones_like(cell_sorted, dtype=torch.bool)
            first[1:] = cell_sorted[1:] != cell_sorted[:-1]
            rep[idx[by_cell[first]]] = True
            counts = torch.bincount(inverse)
            rep_target = idx[by_cell[first]] // S  # target of each cell, in cell order
            singletons.scatter_add_(0, rep_target, (counts == 1).long())
        return rep.reshape(B, S), singletons

    def _select(self, q: torch.Tensor, cand: torch.Tensor, seed: torch.Tensor | None, K: int, tol: float, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy choice of K distinct candidates per target: indices (B, K) into the pool and validity.

        With a seed: repeatedly the candidate nearest the seed; without: farthest-point order (the
        next is the candidate farthest from those chosen, i.e. most diverse first).  After each pick,
        candidates within ``tol`` of it (max joint difference modulo 2*pi, and of its class where
        ``labels`` (B, S) are given) are no longer available, so the chosen ones are pairwise distinct.  K passes over the pool, each O(B * S * dof).
        """
        B, S, dof = q.shape
        ar = torch.arange(B)
        # distances in float32: wrapped angles are within [-pi, pi), far coarser than tol matters
        qw = self._wrap(q).float()
        periodic = self._periodic
        all_periodic = bool(periodic.all())

        def dist_to(c: torch.Tensor) -> torch.Tensor:  # (B, dof) -> (B, S)
            d = (qw - c[:, None]).abs()
            d = torch.minimum(d, 2 * math.pi - d) if all_periodic else torch.where(periodic, torch.minimum(d, 2 * math.pi - d), d)
            return d.amax(-1)

        avail = cand.clone()
        chosen = torch.zeros(B, K, dtype=torch.long)
        ok = torch.zeros(B, K, dtype=torch.bool)
        if seed is not None:
            priority = -(torch.nan_to_num(q, nan=0.0) - seed[:, None]).norm(dim=-1)  # nearest the seed first
        else:
            priority = torch.zeros(B, S, dtype=torch.float64)
            priority[:, 0] = 1.0  # farthest-point order starts at the first candidate
        neg_inf = torch.tensor(-math.inf, dtype=torch.float64)
        min_d = torch.full((B, S), math.inf, dtype=torch.float64)
        for k in range(K):
            if not bool(avail.any()):
                break
            score = torch.where(avail, priority if (seed is not None or k == 0) else min_d, neg_inf)
            cur = torch.argmax(score, dim=1)
            has = avail[ar, cur]
            chosen[:, k] = cur
            ok[:, k] = has
            d = dist_to(qw[ar, cur]).double()
            avail &= (d > tol) if labels is None else ((d > tol) | (labels != labels[ar, cur][:, None]))
            if seed is None:
                min_d = torch.minimum(min_d, d)
        return chosen, ok


def refined_answers(model, chain, position: torch.Tensor, rotation: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The IK service's single refined answer per target: ((N, dof) joints, (N,) found), as the
    learner measures refined answers on the arm (:data:`cemssl_ik.learning.adaptation.Refine`)."""
    res = IKSolver(model, chain).solve(position, rotation, options=SolverOptions(num_solutions=1))
    return torch.as_tensor(res.solutions[:, 0]), torch.as_tensor(res.valid[:, 0])
