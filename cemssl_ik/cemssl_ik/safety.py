"""Safety checks for commanding a real arm: every joint target is checked before it is sent.

:class:`SafetyChecker` holds a chain and a :class:`SafetyConfig` and answers, for a move from the
current joints to a target (or through a trajectory's points), a :class:`SafetyVerdict`:

- every value finite, shapes right;
- targets within the joint limits shrunk by a margin;
- no joint further than ``max_joint_step`` from where it starts;
- along the straight joint-space path (sampled every ``path_resolution`` rad): every moving link
  frame above the floor and inside the workspace box, every link capsule above the floor, and no two
  non-adjacent link capsules closer than ``self_collision_margin``;
- for timed trajectories, no segment faster than the velocity limits allow.

:meth:`SafetyChecker.time_trajectory` times a move with a synchronized trapezoidal velocity profile
under ``velocity_scale`` x the joints' velocity limits and ``max_acceleration``.  Tracking, timeout and
dry-run fields are for the code that executes moves (the simulated robot, the learner's robot
forward model): :meth:`SafetyChecker.check_tracking` compares commanded and measured joints.

Units: radians, metres, seconds; positions in the chain's base frame.  Defaults fit a UR3 on a table
(``base_link`` z = 0 on the table top) and are conservative.  No rclpy here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .kinematics.chain import KinematicChain

__all__ = ["SafetyConfig", "SafetyVerdict", "SafetyChecker", "TimedTrajectory", "UR3_CAPSULES", "segment_distance"]

#: Coarse UR3 collision capsules per link, in the link's own frame: (x0, y0, z0, x1, y1, z1, radius) m.
UR3_CAPSULES: dict[str, tuple[tuple[float, ...], ...]] = {
    "base_link_inertia": ((0.0, 0.0, 0.0, 0.0, 0.0, 0.03, 0.06),),
    "shoulder_link": ((0.0, 0.0, -0.05, 0.0, 0.0, 0.04, 0.055),),
    "upper_arm_link": (
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.12, 0.045),  # lift joint housing along the lift axis
        (0.0, 0.0, 0.12, -0.24365, 0.0, 0.12, 0.045),  # upper arm tube
    ),
    "forearm_link": (
        (0.0, 0.0, 0.03, 0.0, 0.0, 0.12, 0.04),  # elbow housing
        (0.0, 0.0, 0.027, -0.21325, 0.0, 0.027, 0.035),  # forearm tube
    ),
    "wrist_1_link": ((0.0, 0.0, -0.085, 0.0, 0.0, 0.0, 0.035),),
    "wrist_2_link": ((0.0, 0.0, -0.03, 0.0, 0.0, 0.03, 0.035),),
    "wrist_3_link": ((0.0, 0.0, -0.03, 0.0, 0.0, 0.0, 0.032),),
}


def _tuple(name: str, value, n: int | None = None) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"SafetyConfig.{name} must be a list of numbers, got {value!r}") from exc
    if n is not None and len(out) != n:
        raise ValueError(f"SafetyConfig.{name} must have {n} values, got {len(out)}")
    if any(math.isnan(v) for v in out):
        raise ValueError(f"SafetyConfig.{name} must not contain NaN, got {out}")
    return out


@dataclass(frozen=True)
class SafetyConfig:
    """Limits for commanding an arm.  Load from YAML with :meth:`from_yaml`; unknown keys are errors."""

    #: distance kept from every joint limit (rad).
    joint_limit_margin: float = 0.05
    #: optional tighter joint limits (rad), one per movable joint; empty = the chain's.
    lower_limits: tuple[float, ...] = ()
    upper_limits: tuple[float, ...] = ()
    #: largest distance (rad) any joint may be commanded away from where the move starts.
    max_joint_step: float = 0.5
    #: floor plane height (m, base frame) and the clearance every moving link keeps above it (m).
    floor_z: float = 0.0
    floor_clearance: float = 0.02
    #: axis-aligned box (m, base frame) every moving link frame origin stays in.
    workspace_min: tuple[float, float, float] = (-0.7, -0.7, -0.1)
    workspace_max: tuple[float, float, float] = (0.7, 0.7, 0.9)
    #: check the straight joint-space path every this many rad of the largest joint motion.
    path_resolution: float = 0.05
    #: coarse self-collision check between non-adjacent links' capsules.
    self_collision: bool = True
    #: distance (m) capsules of non-adjacent links keep from each other.
    self_collision_margin: float = 0.01
    #: link -> list of capsules (x0, y0, z0, x1, y1, z1, radius) in the link frame; links not on the
    #: chain are ignored (empty = the UR3 capsules).
    capsules: Mapping[str, Sequence[Sequence[float]]] = field(default_factory=dict)
    #: link pairs never checked against each other (besides adjacent ones).
    ignore_pairs: tuple[tuple[str, str], ...] = ()
    #: fraction of the joints' velocity limits used to time moves and allowed in trajectories.
    velocity_scale: float = 0.25
    #: joint acceleration limit (rad/s^2) used to time moves.
    max_acceleration: float = 1.5
    #: spacing (s) of the points of a timed move.
    trajectory_sample_period: float = 0.1
    #: a move not settled this long (s) after its planned end is aborted.
    settle_timeout: float = 5.0
    #: joint states older than this (s) count as lost: abort and hold.
    joint_state_timeout: float = 0.5
    #: |commanded - measured| above this (rad) on any joint: abort and hold.
    tracking_error_threshold: float = 0.1
    #: check and log only; execute nothing.
    dry_run: bool = False

    def __post_init__(self) -> None:
        nonneg = ("joint_limit_margin", "floor_clearance", "self_collision_margin")
        positive = (
            "max_joint_step",
            "path_resolution",
            "velocity_scale",
            "max_acceleration",
            "trajectory_sample_period",
            "settle_timeout",
            "joint_state_timeout",
            "tracking_error_threshold",
        )
        for name in nonneg + positive:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (name in positive and v == 0):
                raise ValueError(f"SafetyConfig.{name} must be a finite number {'> 0' if name in positive else '>= 0'}, got {v!r}")
        if not isinstance(self.floor_z, (int, float)) or not math.isfinite(self.floor_z):
            raise ValueError(f"SafetyConfig.floor_z must be a finite number, got {self.floor_z!r}")
        if self.velocity_scale > 1.0:
            raise ValueError(f"SafetyConfig.velocity_scale is a fraction of the velocity limits, <= 1; got {self.velocity_scale}")
        for name in ("self_collision", "dry_run"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"SafetyConfig.{name} must be true or false, got {getattr(self, name)!r}")
        object.__setattr__(self, "lower_limits", _tuple("lower_limits", self.lower_limits))
        object.__setattr__(self, "upper_limits", _tuple("upper_limits", self.upper_limits))
        lo, hi = _tuple("workspace_min", self.workspace_min, 3), _tuple("workspace_max", self.workspace_max, 3)
        if not all(a < b for a, b in zip(lo, hi)):
            raise ValueError(f"SafetyConfig.workspace_min {lo} must be below workspace_max {hi} on every axis")
        object.__setattr__(self, "workspace_min", lo)
        object.__setattr__(self, "workspace_max", hi)
        caps: dict[str, tuple[tuple[float, ...], ...]] = {}
        for link, items in dict(self.capsules).items():
            rows = tuple(_tuple(f"capsules[{link!r}]", c, 7) for c in items)
            if any(not all(math.isfinite(v) for v in r) or r[6] < 0 for r in rows):
                raise ValueError(f"SafetyConfig.capsules[{link!r}]: finite (x0 y0 z0 x1 y1 z1 radius >= 0) expected, got {rows}")
            caps[str(link)] = rows
        object.__setattr__(self, "capsules", caps)
        pairs = []
        for p in self.ignore_pairs:
            if len(p) != 2:
                raise ValueError(f"SafetyConfig.ignore_pairs entries are [link_a, link_b], got {p!r}")
            pairs.append((str(p[0]), str(p[1])))
        object.__setattr__(self, "ignore_pairs", tuple(pairs))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SafetyConfig":
        """Build from a mapping (e.g. parsed YAML); unknown keys raise ValueError naming the known ones."""
        if not isinstance(values, Mapping):
            raise TypeError(f"a safety config must be a mapping of field -> value, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown safety config keys {unknown}; known keys: {sorted(known)}")
        return cls(**dict(values))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SafetyConfig":
        """Read a YAML file holding a mapping of fields (an empty file gives the defaults)."""
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.from_dict(data)


@dataclass(frozen=True)
class SafetyVerdict:
    """ok: the command may be sent; reasons: why not (empty when ok)."""

    ok: bool
    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class TimedTrajectory:
    """A timed move, ready for a JointTrajectory (the start point at t = 0 is not included).

    times: (N,) s from the start, increasing, last = duration; positions, velocities: (N, dof)."""

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    duration: float


def segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Distance between segments p0-p1 and q0-q1, batched: inputs (..., 3) -> (...,) metres."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a = np.einsum("...i,...i", d1, d1)
    e = np.einsum("...i,...i", d2, d2)
    f = np.einsum("...i,...i", d2, r)
    c = np.einsum("...i,...i", d1, r)
    b = np.einsum("...i,...i", d1, d2)
    eps = 1e-12
    a_ok, e_ok = a > eps, e > eps
    a_safe, e_safe = np.where(a_ok, a, 1.0), np.where(e_ok, e, 1.0)
    denom = a * e - b * b
    # general case (Ericson, Real-Time Collision Detection 5.1.9): s on the infinite lines, clamped ...
    s = np.where(denom > eps * a_safe * e_safe, np.clip((b * f - c * e) / np.where(denom > 0, denom, 1.0), 0.0, 1.0), 0.0)
    # ... a point q (degenerate second segment): t = 0 and s from p's line alone
    s = np.where(e_ok, s, np.clip(-c / a_safe, 0.0, 1.0))
    t = np.where(e_ok, (b * s + f) / e_safe, 0.0)
    t_c = np.clip(t, 0.0, 1.0)
    # t clamped: recompute s for the clamped t
    s = np.where(t != t_c, np.clip((b * t_c - c) / a_safe, 0.0, 1.0), s)
    s = np.where(a_ok, s, 0.0)
    t_c = np.where(a_ok, t_c, np.clip(f / e_safe, 0.0, 1.0) * e_ok)
    cp = p0 + s[..., None] * d1
    cq = q0 + t_c[..., None] * d2
    return np.linalg.norm(cp - cq, axis=-1)


class SafetyChecker:
    """Checks joint commands for one chain under one :class:`SafetyConfig`.

    Args:
        chain: the arm (its joint limits, link frames and velocity limits are used).
        config: limits; defaults to ``SafetyConfig()``.
    """

    def __init__(self, chain: KinematicChain, config: SafetyConfig | None = None) -> None:
        self.chain = chain
        self.config = config = config or SafetyConfig()
        dof = chain.dof
        lo = np.asarray(config.lower_limits, dtype=np.float64) if config.lower_limits else chain.lower.copy()
        hi = np.asarray(config.upper_limits, dtype=np.float64) if config.upper_limits else chain.upper.copy()
        if lo.shape != (dof,) or hi.shape != (dof,):
            raise ValueError(f"SafetyConfig.lower_limits / upper_limits need {dof} values each (one per joint of {chain.joint_names})")
        lo = np.maximum(lo, chain.lower)
        hi = np.minimum(hi, chain.upper)
        #: (dof,) limits a target must lie within (rad); +-inf stays for unlimited joints
        self.lower = lo + config.joint_limit_margin
        self.upper = hi - config.joint_limit_margin
        if np.any(self.lower > self.upper):
            raise ValueError(f"joint_limit_margin {config.joint_limit_margin} leaves no room between the limits {lo} and {hi}")
        vmax = np.where(np.isfinite(chain.velocity_limits), chain.velocity_limits, math.pi)
        #: (dof,) velocity limits used (rad/s)
        self.velocity_limits = vmax * config.velocity_scale
        names, _ = chain.link_frames(torch.zeros(dof, dtype=torch.float64))
        self.link_names = names
        # links before the first movable joint do not move: exempt from the floor / box checks
        first_moving = 1 + next(i for i, j in enumerate(chain.joints) if j.movable)
        self._moving = np.arange(first_moving, len(names))
        capsules = config.capsules or UR3_CAPSULES
        rows, owner = [], []
        for link, items in capsules.items():
            if link not in names:
                continue
            for c in items:
                rows.append(c)
                owner.append(names.index(link))
        self._caps = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
        self._cap_link = np.asarray(owner, dtype=np.int64)
        ignore = {frozenset(p) for p in config.ignore_pairs}
        # adjacent = consecutive among links that carry capsules (links without any are skipped over)
        order = sorted(set(owner))
        rank = {link: k for k, link in enumerate(order)}
        pairs = []
        for a in range(len(rows)):
            for b in range(a + 1, len(rows)):
                la, lb = owner[a], owner[b]
                if abs(rank[la] - rank[lb]) <= 1 or frozenset((names[la], names[lb])) in ignore:
                    continue
                pairs.append((a, b))
        self._pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self._cap_moving = np.isin(self._cap_link, self._moving)

    # ------------------------------------------------------------------ checks
    def _vector(self, name: str, q, reasons: list[str]) -> np.ndarray | None:
        try:
            arr = np.asarray(q, dtype=np.float64)
        except (TypeError, ValueError):
            reasons.append(f"{name} is not numeric")
            return None
        if arr.shape != (self.chain.dof,):
            reasons.append(f"{name} has shape {arr.shape}, expected ({self.chain.dof},)")
            return None
        if not np.all(np.isfinite(arr)):
            reasons.append(f"{name} contains NaN or inf")
            return None
        return arr

    def configuration_reasons(self, q: np.ndarray) -> list[str]:
        """Why configurations (B, dof) are unsafe to be in (floor, box, self-collision); [] if all are fine."""
        cfg = self.config
        q = np.asarray(q, dtype=np.float64).reshape(-1, self.chain.dof)
        _, T = self.chain.link_frames(torch.as_tensor(q))
        T = T.numpy()  # (B, L, 4, 4)
        reasons: list[str] = []
        origins = T[:, self._moving][..., :3, 3]  # (B, M, 3)
        z_min = cfg.floor_z + cfg.floor_clearance
        low = origins[..., 2] < z_min
        if low.any():
            b, m = np.argwhere(low)[0]
            reasons.append(f"link {self.link_names[self._moving[m]]} at z = {origins[b, m, 2]:.3f} m is below the floor + clearance ({z_min:.3f} m)")
        box_lo, box_hi = np.asarray(cfg.workspace_min), np.asarray(cfg.workspace_max)
        out = np.any((origins < box_lo) | (origins > box_hi), axis=-1)
        if out.any():
            b, m = np.argwhere(out)[0]
            reasons.append(f"link {self.link_names[self._moving[m]]} at {np.round(origins[b, m], 3).tolist()} m leaves the workspace box")
        if len(self._caps):
            Tc = T[:, self._cap_link]  # (B, C, 4, 4)
            a = np.einsum("bcij,cj->bci", Tc[..., :3, :3], self._caps[:, 0:3]) + Tc[..., :3, 3]
            e = np.einsum("bcij,cj->bci", Tc[..., :3, :3], self._caps[:, 3:6]) + Tc[..., :3, 3]
            r = self._caps[:, 6]
            bottom = np.minimum(a[..., 2], e[..., 2]) - r  # (B, C)
            under = (bottom < z_min) & self._cap_moving
            if under.any():
                b, c = np.argwhere(under)[0]
                reasons.append(f"link {self.link_names[self._cap_link[c]]} reaches z = {bottom[b, c]:.3f} m, below the floor + clearance ({z_min:.3f} m)")
            if cfg.self_collision and len(self._pairs):
                i, j = self._pairs[:, 0], self._pairs[:, 1]
                d = segment_distance(a[:, i], e[:, i], a[:, j], e[:, j]) - r[i] - r[j]  # (B, P)
                hit = d < cfg.self_collision_margin
                if hit.any():
                    b, p = np.argwhere(hit)[0]
                    la, lb = self.link_names[self._cap_link[i[p]]], self.link_names[self._cap_link[j[p]]]
                    reasons.append(f"links {la} and {lb} come within {d[b, p] * 1000:.1f} mm of each other (self-collision)")
        return reasons

    def check(self, q_current, q_target) -> SafetyVerdict:
        """May the arm move in a straight joint-space line from ``q_current`` to ``q_target`` (dof,) rad?"""
        return self.check_trajectory(q_current, None if q_target is None else [q_target])

    def check_trajectory(self, q_current, points, times=None) -> SafetyVerdict:
        """May the arm follow ``points`` (N, dof) rad from ``q_current`` (dof,), at ``times`` (N,) s if given?

        Every point must keep the joint limits, stay within ``max_joint_step`` of ``q_current``, and
        every straight segment between consecutive points (from ``q_current`` on) must keep clear of
        floor, box and self-collision; with ``times``, no segment may need more than the allowed
        joint velocities.
        """
        cfg = self.config
        reasons: list[str] = []
        q0 = self._vector("current joint positions", q_current, reasons)
        try:
            pts = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError):
            return SafetyVerdict(False, tuple(reasons + ["trajectory points are not numeric"]))
        if pts.ndim != 2 or pts.shape[0] < 1 or pts.shape[1] != self.chain.dof:
            return SafetyVerdict(False, tuple(reasons + [f"trajectory points have shape {pts.shape}, expected (N >= 1, {self.chain.dof})"]))
        if not np.all(np.isfinite(pts)):
            return SafetyVerdict(False, tuple(reasons + ["a target contains NaN or inf"]))
        if q0 is None:
            return SafetyVerdict(False, tuple(reasons))
        bad = (pts < self.lower) | (pts > self.upper)
        if bad.any():
            k, j = np.argwhere(bad)[0]
            reasons.append(
                f"joint {self.chain.joint_names[j]} target {pts[k, j]:.4f} rad is outside its limits with margin [{self.lower[j]:.4f}, {self.upper[j]:.4f}]"
            )
        step = np.abs(pts - q0)
        if np.any(step > cfg.max_joint_step):
            k, j = np.unravel_index(np.argmax(step), step.shape)
            reasons.append(f"joint {self.chain.joint_names[j]} would move {step[k, j]:.4f} rad, more than max_joint_step {cfg.max_joint_step} rad")
        if times is not None:
            t = np.asarray(times, dtype=np.float64).reshape(-1)
            if t.shape[0] != pts.shape[0] or not np.all(np.isfinite(t)) or t[0] < 0 or np.any(np.diff(t) <= 0):
                reasons.append("trajectory times must be finite, >= 0, strictly increasing and one per point")
            else:
                dq = np.abs(np.diff(np.concatenate([q0[None], pts]), axis=0))  # (N, dof)
                dt = np.diff(np.concatenate([[0.0], t]))
                with np.errstate(divide="ignore", invalid="ignore"):
                    speed = np.where(dq > 0, dq / dt[:, None], 0.0)
                ratio = speed / self.velocity_limits
                if np.any(ratio > 1.0 + 1e-6):
                    k, j = np.unravel_index(np.argmax(ratio), ratio.shape)
                    reasons.append(
                        f"joint {self.chain.joint_names[j]} would need {speed[k, j]:.3f} rad/s, above the allowed {self.velocity_limits[j]:.3f} rad/s "
                        "(time the move with time_trajectory)"
                    )
        if reasons:  # don't sweep paths of a command already refused (and possibly huge)
            return SafetyVerdict(False, tuple(reasons))
        path = [pts[0:1]]
        prev = q0
        for p in pts:
            n = max(1, int(math.ceil(float(np.max(np.abs(p - prev))) / cfg.path_resolution)))
            s = np.arange(1, n + 1, dtype=np.float64)[:, None] / n
            path.append(prev + s * (p - prev))
            prev = p
        reasons.extend(self.configuration_reasons(np.concatenate(path)))
        return SafetyVerdict(not reasons, tuple(reasons))

    def check_tracking(self, q_commanded, q_measured) -> SafetyVerdict:
        """Is the measured state (dof,) close enough to the commanded one (and finite)?"""
        reasons: list[str] = []
        qc = self._vector("commanded joint positions", q_commanded, reasons)
        qm = self._vector("measured joint positions", q_measured, reasons)
        if qc is not None and qm is not None:
            err = np.abs(qc - qm)
            if np.max(err) > self.config.tracking_error_threshold:
                j = int(np.argmax(err))
                reasons.append(f"joint {self.chain.joint_names[j]} tracking error {err[j]:.4f} rad above {self.config.tracking_error_threshold} rad")
        return SafetyVerdict(not reasons, tuple(reasons))

    # ------------------------------------------------------------------ timing
    def time_trajectory(self, q_from, q_to) -> TimedTrajectory:
        """Time a straight joint move with a synchronized trapezoidal velocity profile.

        All joints start and stop together; no joint exceeds ``velocity_scale`` x its velocity limit
        or ``max_acceleration``.  Points every ``trajectory_sample_period`` s plus the end point.

        Raises:
            ValueError: non-finite or misshapen input (check the move with :meth:`check` first).
        """
        reasons: list[str] = []
        a = self._vector("q_from", q_from, reasons)
        b = self._vector("q_to", q_to, reasons)
        if a is None or b is None:
            raise ValueError("; ".join(reasons))
        delta = b - a
        dist = np.abs(delta)
        moving = dist > 0
        cfg = self.config
        if not moving.any():
            return TimedTrajectory(np.array([cfg.trajectory_sample_period]), b[None].copy(), np.zeros((1, a.shape[0])), cfg.trajectory_sample_period)
        # normalized path s in [0, 1]: joint j moves dist_j * s
        V = float(np.min(self.velocity_limits[moving] / dist[moving]))
        A = float(np.min(cfg.max_acceleration / dist[moving]))
        if V * V / A >= 1.0:  # triangular: never reaches V
            t_acc = math.sqrt(1.0 / A)
            V = A * t_acc
            T = 2 * t_acc
        else:
            t_acc = V / A
            T = 1.0 / V + t_acc
        n = max(1, int(math.ceil(T / cfg.trajectory_sample_period - 1e-9)))
        t = np.minimum(np.arange(1, n + 1, dtype=np.float64) * cfg.trajectory_sample_period, T)
        t[-1] = T
        s = np.where(t < t_acc, 0.5 * A * t * t, np.where(t > T - t_acc, 1.0 - 0.5 * A * (T - t) ** 2, 0.5 * A * t_acc * t_acc + V * (t - t_acc)))
        sd = np.where(t < t_acc, A * t, np.where(t > T - t_acc, A * (T - t), V))
        s[-1], sd[-1] = 1.0, 0.0
        return TimedTrajectory(t, a + s[:, None] * delta, sd[:, None] * delta, float(T))
