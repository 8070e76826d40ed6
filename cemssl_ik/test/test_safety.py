"""The safety layer: hostile commands refused (fuzzed, checked against an independent dense oracle),
legitimate small moves accepted, trajectories timed within the limits, configs validated."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cemssl_ik.kinematics import load_robot
from cemssl_ik.safety import UR3_CAPSULES, SafetyChecker, SafetyConfig, segment_distance

HOME = np.array([0.0, -math.pi / 2, math.pi / 2, -math.pi / 2, -math.pi / 2, 0.0])


@pytest.fixture(scope="module")
def ur3():
    return load_robot("ur3")


@pytest.fixture(scope="module")
def checker(ur3):
    return SafetyChecker(ur3, SafetyConfig())


def _capsule_points(T: np.ndarray, names: list[str], n: int = 12) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Points sampled along every capsule axis: owners, (B, C, n, 3) points, (C,) radii."""
    owners, pts, radii = [], [], []
    s = np.linspace(0.0, 1.0, n)[:, None]
    for link, caps in UR3_CAPSULES.items():
        k = names.index(link)
        for c in caps:
            a, b = np.asarray(c[0:3]), np.asarray(c[3:6])
            local = a + s * (b - a)  # (n, 3)
            pts.append(np.einsum("bij,nj->bni", T[:, k, :3, :3], local) + T[:, k, None, :3, 3])
            owners.append(link)
            radii.append(c[6])
    return owners, np.stack(pts, axis=1), np.asarray(radii)


def _link_frames_np(chain, Q: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Link frames (B, L, 4, 4) in plain numpy from the joint specs (independent of the torch FK)."""
    T = np.broadcast_to(np.eye(4), (Q.shape[0], 4, 4))
    names, frames, i = [chain.base_link], [T], 0
    for j in chain.joints:
        T = T @ j.origin
        if j.movable:
            x, y, z = j.axis
            K = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
            M = np.broadcast_to(np.eye(4), (Q.shape[0], 4, 4)).copy()
            q = Q[:, i, None, None]
            M[:, :3, :3] += np.sin(q) * K + (1 - np.cos(q)) * (K @ K)
            T = T @ M
            i += 1
        names.append(j.child)
        frames.append(T)
    return names, np.stack(frames, axis=1)


def oracle_unsafe(chain, cfg: SafetyConfig, q0: np.ndarray, target) -> str | None:
    """Why a move is unsafe, judged independently of SafetyChecker (dense path, sampled capsules); None if safe.

    Unsafe means: non-finite, outside the limits with margin, a step above max_joint_step, or on
    the straight path a moving link frame or capsule touching the floor (clearance not required),
    leaving the box, or two non-adjacent capsules overlapping."""
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (chain.dof,) or not np.all(np.isfinite(target)) or not np.all(np.isfinite(q0)):
        return "non-finite"
    if np.any(target < chain.lower + cfg.joint_limit_margin - 1e-12) or np.any(target > chain.upper - cfg.joint_limit_margin + 1e-12):
        return "limits"
    if np.max(np.abs(target - q0)) > cfg.max_joint_step + 1e-12:
        return "step"
    n = max(2, int(np.ceil(np.max(np.abs(target - q0)) / 0.01)) + 1)
    path = q0 + np.linspace(0.0, 1.0, n)[:, None] * (target - q0)
    names, T = _link_frames_np(chain, path)
    moving = [i for i, name in enumerate(names) if name not in ("base_link", "base_link_inertia", "base")]
    origins = T[:, moving, :3, 3]
    if np.any(origins[..., 2] < cfg.floor_z):
        return "floor (frame)"
    if np.any(origins < np.asarray(cfg.workspace_min)) or np.any(origins > np.asarray(cfg.workspace_max)):
        return "box"
    owners, pts, radii = _capsule_points(T, names)
    for c, owner in enumerate(owners):
        if owner != "base_link_inertia" and np.any(pts[:, c, :, 2] - radii[c] < cfg.floor_z):
            return "floor (capsule)"
    order = list(UR3_CAPSULES)
    rank = np.array([order.index(o) for o in owners])
    checked = np.abs(rank[:, None] - rank[None, :]) > 1  # (C, C): non-adjacent links
    flat = pts.reshape(pts.shape[0], -1, 3)  # (B, C n, 3)
    d = np.linalg.norm(flat[:, :, None] - flat[:, None, :], axis=-1)  # (B, C n, C n)
    k = pts.shape[2]
    d = d.reshape(-1, len(owners), k, len(owners), k).min(axis=(0, 2, 4))  # (C, C)
    hit = checked & (d < radii[:, None] + radii[None, :])
    if hit.any():
        a, b = np.argwhere(hit)[0]
        return f"self-collision {owners[a]} / {owners[b]}"
    return None


def test_segment_distance_matches_dense_sampling() -> None:
    rng = np.random.default_rng(0)
    p0, p1, q0, q1 = (rng.normal(size=(120, 3)) for _ in range(4))
    p1[:20] = p0[:20]  # degenerate segments (points)
    q1[10:30] = q0[10:30]
    q1[40:50] = q0[40:50] + 2.0 * (p1[40:50] - p0[40:50])  # parallel
    d = segment_distance(p0, p1, q0, q1)
    s = np.linspace(0.0, 1.0, 301)[:, None]
    for i in range(120):
        a = p0[i] + s * (p1[i] - p0[i])
        b = q0[i] + s * (q1[i] - q0[i])
        dense = np.min(np.linalg.norm(a[:, None] - b[None], axis=-1))
        assert d[i] <= dense + 1e-12
        assert d[i] == pytest.approx(dense, abs=1e-2)


def test_legitimate_small_moves_are_accepted(ur3, checker) -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        q0 = HOME + rng.uniform(-0.3, 0.3, 6)
        target = q0 + rng.uniform(-0.2, 0.2, 6)
        verdict = checker.check(q0, target)
        assert verdict.ok, (q0, target, verdict.reasons)
        assert verdict.reasons == ()


def _hostile_targets(chain, cfg: SafetyConfig, rng: np.random.Generator, n: int):
    """(kind, q0, target) triples: random and hostile commands from safe starting configurations."""
    lo, hi = chain.lower, chain.upper
    kinds = ["nan", "inf", "huge", "beyond_limit", "big_step", "uniform", "floor", "fold", "small", "bad_current"]
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        q0 = HOME + rng.uniform(-0.4, 0.4, 6)
        j = int(rng.integers(6))
        t = q0 + rng.uniform(-0.3, 0.3, 6)
        if kind == "nan":
            t[j] = np.nan
        elif kind == "inf":
            t[j] = rng.choice([np.inf, -np.inf])
        elif kind == "huge":
            t[j] = rng.choice([1e308, -1e308, 1e30, np.finfo(np.float64).max])
        elif kind == "beyond_limit":
            side = rng.choice([-1.0, 1.0])
            q0[j] = (hi[j] if side > 0 else lo[j]) - side * rng.uniform(0.06, 0.3)
            t[j] = (hi[j] if side > 0 else lo[j]) - side * cfg.joint_limit_margin + side * rng.uniform(1e-6, 0.2)
        elif kind == "big_step":
            t[j] = q0[j] + rng.choice([-1.0, 1.0]) * rng.uniform(cfg.max_joint_step + 1e-6, 3.0)
        elif kind == "uniform":
            t = rng.uniform(lo, hi)
        elif kind == "floor":
            # forearm reaching down: shoulder lift forward and down, then a step further
            q0 = np.array([rng.uniform(-3, 3), rng.uniform(-0.6, -0.2), rng.uniform(0.8, 1.4), -1.0, -1.57, 0.0])
            t = q0 + np.array([0.0, rng.uniform(0.2, 0.5), rng.uniform(0.0, 0.4), rng.uniform(-0.3, 0.3), 0.0, 0.0])
        elif kind == "fold":
            # elbow folding the forearm back onto the upper arm / base
            q0 = np.array([rng.uniform(-3, 3), -1.57 + rng.uniform(-0.3, 0.3), rng.choice([-1, 1]) * rng.uniform(2.5, 2.9), -1.57, -1.57, 0.0])
            t = q0.copy()
            t[2] = np.sign(q0[2]) * min(abs(q0[2]) + rng.uniform(0.1, 0.5), math.pi - 1e-3)
            t[1] += rng.uniform(-0.5, 0.5)
        elif kind == "small":
            t = q0 + rng.uniform(-0.05, 0.05, 6)
        elif kind == "bad_current":
            q0 = q0.copy()
            q0[j] = rng.choice([np.nan, np.inf])
        out.append((kind, q0, t))
    return out


def test_fuzz_no_unsafe_command_accepted(ur3, checker) -> None:
    cfg = checker.config
    rng = np.random.default_rng(2)
    accepted: dict[str, int] = {}
    unsafe_seen: dict[str, int] = {}
    for kind, q0, target in _hostile_targets(ur3, cfg, rng, 1000):
        verdict = checker.check(q0, target)
        # the oracle judges every accepted move, and the geometric hazards (the rest are unsafe by construction)
        why = oracle_unsafe(ur3, cfg, q0, target) if verdict.ok or kind in ("floor", "fold") else "by construction"
        if why is not None:
            unsafe_seen[kind] = unsafe_seen.get(kind, 0) + 1
            assert not verdict.ok, f"{kind}: accepted an unsafe move ({why}): {q0} -> {target}"
            assert verdict.reasons, "a refusal says why"
        if verdict.ok:
            accepted[kind] = accepted.get(kind, 0) + 1
    for kind in ("nan", "inf", "huge", "beyond_limit", "big_step", "bad_current"):
        assert kind not in accepted, f"{kind} targets must all be refused"
    # the generators of geometric hazards do produce unsafe moves, and small moves get through
    assert unsafe_seen.get("floor", 0) >= 30 and unsafe_seen.get("fold", 0) >= 30, unsafe_seen
    assert accepted.get("small", 0) >= 90, accepted


def test_malformed_commands_refused(checker) -> None:
    for target in (None, "abc", [0.0] * 5, np.zeros((2, 6)), [[float("nan")] * 6]):
        assert not checker.check(HOME, target).ok
    assert not checker.check_trajectory(HOME, np.zeros((0, 6))).ok
    assert not checker.check_trajectory(HOME, [HOME, HOME + 0.1], times=[1.0, 1.0]).ok
    assert not checker.check_trajectory(HOME, [HOME + 0.1], times=[float("nan")]).ok


def test_floor_and_self_collision_are_named(checker) -> None:
    down = HOME.copy()
    down[1] = -0.2  # upper arm almost horizontal: the forearm and wrist hang into the table
    down[2] = 1.5
    verdict = checker.configuration_reasons(down)
    assert any("floor" in r for r in verdict), verdict
    folded = np.array([0.0, -1.57, 3.1, -1.57, -1.57, 0.0])
    assert any("self-collision" in r for r in checker.configuration_reasons(folded))
    assert checker.configuration_reasons(HOME) == []


def test_path_through_the_floor_is_refused_even_when_both_ends_are_safe(ur3) -> None:
    # upper arm just above horizontal on one side, then on the other: the straight joint path
    # swings the arm down through the table (shoulder_lift = pi/2 points it at the floor)
    checker = SafetyChecker(ur3, SafetyConfig(max_joint_step=4.0))
    a = np.array([0.0, -0.2, 0.0, 0.0, 0.0, 0.0])
    b = np.array([0.0, math.pi - 0.2, 0.0, 0.0, 0.0, 0.0])
    assert checker.configuration_reasons(a) == [] and checker.configuration_reasons(b) == []
    verdict = checker.check(a, b)
    assert not verdict.ok and any("floor" in r for r in verdict.reasons), verdict
    # the way over the top is fine
    assert checker.check(a, np.array([0.0, -math.pi + 0.2, 0.0, 0.0, 0.0, 0.0])).ok


def test_time_trajectory_respects_limits_and_passes_the_check(ur3, checker) -> None:
    cfg = checker.config
    rng = np.random.default_rng(3)
    for _ in range(20):
        q0 = HOME + rng.uniform(-0.3, 0.3, 6)
        q1 = q0 + rng.uniform(-0.45, 0.45, 6)
        traj = checker.time_trajectory(q0, q1)
        assert np.allclose(traj.positions[-1], q1, atol=1e-12) and np.all(traj.velocities[-1] == 0)
        assert traj.times[-1] == pytest.approx(traj.duration) and np.all(np.diff(traj.times) > 0)
        assert np.all(np.abs(traj.velocities) <= checker.velocity_limits + 1e-9)
        # acceleration: finite differences of the sampled velocity profile
        dt = np.diff(np.concatenate([[0.0], traj.times]))
        dv = np.diff(np.concatenate([np.zeros((1, 6)), traj.velocities]), axis=0)
        assert np.all(np.abs(dv) <= cfg.max_acceleration * dt[:, None] + 1e-9)
        assert checker.check_trajectory(q0, traj.positions, traj.times).ok
    # the same points, twice as fast, are refused
    traj = checker.time_trajectory(HOME, HOME + 0.4)
    assert not checker.check_trajectory(HOME, traj.positions, traj.times / 2).ok
    # nothing to do: one point at the start
    still = checker.time_trajectory(HOME, HOME)
    assert still.positions.shape == (1, 6) and np.all(still.positions[0] == HOME)
    with pytest.raises(ValueError, match="NaN"):
        checker.time_trajectory(HOME, HOME + np.nan)


def test_tracking_check(checker) -> None:
    assert checker.check_tracking(HOME, HOME + 0.01).ok
    assert not checker.check_tracking(HOME, HOME + 0.2).ok
    assert not checker.check_tracking(HOME, HOME * np.nan).ok


def test_config_yaml_and_validation(tmp_path, ur3) -> None:
    path = tmp_path / "safety.yaml"
    path.write_text("max_joint_step: 0.3\nfloor_z: -0.05\nworkspace_max: [0.6, 0.6, 0.8]\nignore_pairs: [[shoulder_link, forearm_link]]\n")
    cfg = SafetyConfig.from_yaml(path)
    assert cfg.max_joint_step == 0.3 and cfg.floor_z == -0.05 and cfg.workspace_max == (0.6, 0.6, 0.8)
    assert cfg.ignore_pairs == (("shoulder_link", "forearm_link"),)
    assert SafetyChecker(ur3, cfg)._pairs.shape[0] < SafetyChecker(ur3)._pairs.shape[0]
    (tmp_path / "bad.yaml").write_text("max_joint_stepp: 0.3\n")
    with pytest.raises(ValueError, match="unknown safety config keys"):
        SafetyConfig.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert SafetyConfig.from_yaml(tmp_path / "empty.yaml") == SafetyConfig()
    for bad in ({"max_joint_step": 0.0}, {"joint_limit_margin": float("nan")}, {"velocity_scale": 2.0}, {"workspace_min": (1.0, 0.0, 0.0)}, {"dry_run": "yes"}):
        with pytest.raises((ValueError, TypeError)):
            SafetyConfig.from_dict(bad)
    with pytest.raises(ValueError, match="lower_limits"):
        SafetyChecker(ur3, SafetyConfig(lower_limits=(0.0, 0.0)))
    with pytest.raises(ValueError, match="no room"):
        SafetyChecker(ur3, SafetyConfig(lower_limits=(0.0,) * 6, upper_limits=(0.05,) * 6))


def test_shipped_safety_yaml_is_the_defaults() -> None:
    from cemssl_ik.resources import find_package_file

    assert SafetyConfig.from_yaml(find_package_file("config/safety.yaml")) == SafetyConfig()
