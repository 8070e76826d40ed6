"""A MuJoCo UR3 whose true kinematics differ from the nominal URDF: the package's simulated robot.

The model is generated as MJCF from the *perturbed* :class:`KinematicChain` (see
:mod:`.perturbation`), with masses and inertias from the URDF's ``<inertial>`` tags, so that MuJoCo's
body frames are exactly the chain's link frames: :meth:`SimUR3.tool_pose` equals
``perturbed_chain(nominal, perturbation).forward(q)`` to rounding (~1e-15 m).  Generating MJCF from
the chain rather than importing the URDF with MjSpec keeps the perturbation (lengthened links,
joint zero offsets, a tool offset) a single transform per joint that both sides share.

Control is what a ros2_control joint trajectory controller over a UR does, coarsely: a setpoint
follows the commanded trajectory (linear interpolation of positions, cubic Hermite where
velocities are given), rate-limited to the joints' velocity limits and ``max_acceleration`` and
braking in time for the trajectory's last point; per-joint PD with velocity
feed-forward tracks it (MuJoCo position actuators, whose damping the ``implicitfast`` integrator
treats implicitly); gravity is compensated (``gravcomp``) and each joint has a reflected rotor inertia
(``armature``), without which position control sags or goes unstable.

Units: metres, radians, seconds; poses in the chain's base frame (``base_link`` for the UR3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from ..kinematics.chain import KinematicChain
from ..kinematics.perturbation import KinematicPerturbation, perturbed_chain
from ..kinematics.transforms import rpy_to_matrix, skew
from ..kinematics.urdf import chain_from_urdf
from ..resources import find_package_file

__all__ = ["SimConfig", "SimMeasurement", "SimUR3", "build_mjcf"]


@dataclass(frozen=True)
class SimConfig:
    """Simulated UR3: robot description, true-arm perturbation, control, noise.  Units as commented."""

    #: URDF path; empty = the package's ``urdf/ur3.urdf``.
    urdf: str = ""
    #: chain ends (the tool pose is ``tip_link`` in ``base_link``).
    base_link: str = "base_link"
    tip_link: str = "tool0"
    #: how the true arm differs from the URDF.
    perturbation: KinematicPerturbation = field(default_factory=KinematicPerturbation)
    #: physics step (s).
    timestep: float = 0.002
    #: closed-loop natural frequency (Hz) and damping ratio of each joint's PD; gains follow from
    #: the joint-space inertia at ``initial_positions``.
    natural_frequency_hz: float = 6.0
    damping_ratio: float = 1.0
    #: (dof,) reflected rotor inertia per joint (kg m^2); empty = UR3-like defaults.
    armature: tuple[float, ...] = ()
    #: viscous joint friction (N m s / rad).
    joint_damping: float = 0.1
    #: fraction of gravity compensated by the controller (1 = all).
    gravity_compensation: float = 1.0
    #: (dof,) start configuration (rad); empty = (0, -pi/2, pi/2, -pi/2, -pi/2, 0).
    initial_positions: tuple[float, ...] = ()
    #: joint acceleration limit of the setpoint (rad/s^2); velocities are the URDF's limits.
    max_acceleration: float = 10.0
    #: measurement noise (standard deviations): joint readings (rad), tool position (m), tool
    #: orientation (rad, per axis of a small rotation).
    joint_noise_std: float = 0.0
    tool_position_noise_std: float = 0.0
    tool_orientation_noise_std: float = 0.0
    #: seed of the noise generator.
    seed: int = 0
    #: settled: trajectory finished, every joint within this of its goal (rad) and slower than
    #: ``settle_velocity_tolerance`` (rad/s).
    settle_position_tolerance: float = 1e-4
    settle_velocity_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        positive = ("timestep", "natural_frequency_hz", "damping_ratio", "max_acceleration", "settle_position_tolerance", "settle_velocity_tolerance")
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"SimConfig.{name} must be a positive finite number, got {v!r}")
        for name in ("joint_damping", "joint_noise_std", "tool_position_noise_std", "tool_orientation_noise_std"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"SimConfig.{name} must be a finite number >= 0, got {v!r}")
        if not 0.0 <= self.gravity_compensation <= 1.0:
            raise ValueError(f"SimConfig.gravity_compensation must be in [0, 1], got {self.gravity_compensation}")
        if self.timestep > 0.01:
            raise ValueError(f"SimConfig.timestep {self.timestep} s is too coarse for stable PD control; use <= 0.01")
        if not isinstance(self.perturbation, KinematicPerturbation):
            raise TypeError(f"SimConfig.perturbation must be a KinematicPerturbation, got {type(self.perturbation).__name__}")
        for name in ("armature", "initial_positions"):
            values = tuple(float(v) for v in getattr(self, name))
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"SimConfig.{name} must be finite, got {values}")
            object.__setattr__(self, name, values)


@dataclass(frozen=True)
class SimMeasurement:
    """What the robot reports at one instant (with the configured noise).

    time: s of simulated time; q, qd: (dof,) rad, rad/s; position: (3,) m and rotation: (3, 3) of
    the tool in the base frame."""

    time: float
    q: np.ndarray
    qd: np.ndarray
    position: np.ndarray
    rotation: np.ndarray


#: UR3 reflected rotor inertias (kg m^2): large joints, elbow, wrists.
_UR3_ARMATURE = (0.3, 0.3, 0.15, 0.04, 0.04, 0.04)
_UR3_HOME = (0.0, -math.pi / 2, math.pi / 2, -math.pi / 2, -math.pi / 2, 0.0)


def _quat_wxyz(R: np.ndarray) -> np.ndarray:
    import mujoco

    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).reshape(9))
    return q


def _fmt(v) -> str:
    return " ".join(repr(float(x)) for x in np.ravel(v))


def _urdf_inertials(urdf_text: str) -> dict[str, tuple[float, np.ndarray, np.ndarray, np.ndarray]]:
    """link name -> (mass kg, com (3,) m, orientation (3, 3), full inertia (6,) xx yy zz xy xz yz) from the URDF."""
    from ..kinematics.urdf import _parse

    robot = _parse(urdf_text)
    out = {}
    for link in robot.links:
        inertial = link.inertial
        if inertial is None or inertial.mass is None or inertial.mass <= 0:
            continue
        xyz = inertial.origin.xyz if inertial.origin is not None and inertial.origin.xyz is not None else [0.0, 0.0, 0.0]
        rpy = inertial.origin.rpy if inertial.origin is not None and inertial.origin.rpy is not None else [0.0, 0.0, 0.0]
        i = inertial.inertia
        full = np.array([i.ixx, i.iyy, i.izz, i.ixy, i.ixz, i.iyz], dtype=np.float64)
        out[link.name] = (float(inertial.mass), np.asarray(xyz, dtype=np.float64), rpy_to_matrix(rpy), full)
    return out


def build_mjcf(chain: KinematicChain, urdf_text: str, config: SimConfig) -> str:
    """MJCF text of ``chain`` (already perturbed) with the URDF's inertials, armature and actuators.

    Every link on the chain is a body whose frame is the chain's link frame; movable joints are
    hinges / slides; the tool is the site ``tool`` in the tip body.  Actuator gains are placeholders
    that :class:`SimUR3` sets from the joint-space inertia.
    """
    inertials = _urdf_inertials(urdf_text)
    armature = config.armature or (_UR3_ARMATURE if chain.dof == 6 else (0.1,) * chain.dof)
    if len(armature) != chain.dof:
        raise ValueError(f"SimConfig.armature has {len(armature)} values for a chain with {chain.dof} joints")
    gravcomp = config.gravity_compensation
    lines = []
    depth = 0
    k = 0
    for j in chain.joints:
        pad = "  " * (depth + 2)
        pos, quat = j.origin[:3, 3], _quat_wxyz(j.origin[:3, :3])
        lines.append(f'{pad}<body name={quoteattr(j.child)} pos="{_fmt(pos)}" quat="{_fmt(quat)}" gravcomp="{gravcomp!r}">')
        if j.child in inertials:
            mass, com, R, full = inertials[j.child]
            # the URDF's inertia is given in the inertial frame (origin rpy): rotate it into the body frame
            I_local = np.array([[full[0], full[3], full[4]], [full[3], full[1], full[5]], [full[4], full[5], full[2]]])
            I_body = R @ I_local @ R.T
            fi = [I_body[0, 0], I_body[1, 1], I_body[2, 2], I_body[0, 1], I_body[0, 2], I_body[1, 2]]
            lines.append(f'{pad}  <inertial pos="{_fmt(com)}" mass="{mass!r}" fullinertia="{_fmt(fi)}"/>')
        if j.movable:
            kind = "slide" if j.type == "prismatic" else "hinge"
            limited = math.isfinite(j.lower) and math.isfinite(j.upper)
            rng = f' range="{j.lower!r} {j.upper!r}"' if limited else ""
            lines.append(
                f'{pad}  <joint name={quoteattr(j.name)} type="{kind}" axis="{_fmt(j.axis)}" armature="{armature[k]!r}" '
                f'damping="{config.joint_damping!r}" limited="{str(limited).lower()}"{rng}/>'
            )
            k += 1
        depth += 1
    lines.append("  " * (depth + 2) + '<site name="tool" pos="0 0 0" quat="1 0 0 0"/>')
    for d in range(depth, 0, -1):
        lines.append("  " * (d + 1) + "</body>")
    actuators = []
    for j in chain.joints:
        if j.movable:
            actuators.append(f'    <position name={quoteattr(j.name)} joint={quoteattr(j.name)} kp="1" kv="0.1"/>')
    return "\n".join(
        [
            f"<mujoco model={quoteattr(chain.name)}>",
            '  <compiler angle="radian" autolimits="true"/>',
            f'  <option timestep="{config.timestep!r}" integrator="implicitfast" gravity="0 0 -9.81"/>',
            "  <worldbody>",
            *lines,
            "  </worldbody>",
            "  <actuator>",
            *actuators,
            "  </actuator>",
            "</mujoco>",
        ]
    )


class SimUR3:
    """A simulated UR3 (any URDF chain, in fact) tracking joint trajectories under MuJoCo physics.

    Args:
        config: see :class:`SimConfig`.

    Attributes:
        nominal_chain: the URDF's chain (what a user believes the arm is).
        true_chain: the perturbed chain (what the arm is); ``tool_pose()`` is its FK.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        import mujoco

        self.config = config = config or SimConfig()
        urdf_path = Path(config.urdf) if config.urdf else find_package_file("urdf/ur3.urdf")
        urdf_text = urdf_path.read_text()
        self.nominal_chain = chain_from_urdf(urdf_text, config.base_link, config.tip_link)
        self.true_chain = perturbed_chain(self.nominal_chain, config.perturbation)
        self.dof = self.nominal_chain.dof
        self.joint_names = self.nominal_chain.joint_names
        self.mjcf = build_mjcf(self.true_chain, urdf_text, config)
        self.model = mujoco.MjModel.from_xml_string(self.mjcf)
        self.data = mujoco.MjData(self.model)
        self._mj = mujoco
        self._site = self.model.site("tool").id
        self._qadr = np.array([self.model.joint(n).qposadr[0] for n in self.joint_names])
        self._dadr = np.array([self.model.joint(n).dofadr[0] for n in self.joint_names])
        self._vmax = np.where(np.isfinite(self.nominal_chain.velocity_limits), self.nominal_chain.velocity_limits, math.pi)
        home = config.initial_positions or (_UR3_HOME if self.dof == 6 else (0.0,) * self.dof)
        if len(home) != self.dof:
            raise ValueError(f"SimConfig.initial_positions has {len(home)} values for a chain with {self.dof} joints")
        self._rng = np.random.default_rng(config.seed)
        self.reset(np.asarray(home, dtype=np.float64))

    # ------------------------------------------------------------------ state
    def reset(self, q: Sequence[float]) -> None:
        """Place the arm at rest at ``q`` (dof,) rad, holding there; recompute the PD gains."""
        q = np.asarray(q, dtype=np.float64).reshape(self.dof)
        mj = self._mj
        mj.mj_resetData(self.model, self.data)
        self.data.qpos[self._qadr] = q
        mj.mj_forward(self.model, self.data)
        M = np.zeros((self.model.nv, self.model.nv))
        mj.mj_fullM(self.model, self.data, M)
        inertia = np.diag(M)[self._dadr]  # (dof,) kg m^2, armature included
        w = 2.0 * math.pi * self.config.natural_frequency_hz
        self._kp = inertia * w * w
        self._kv = np.maximum(2.0 * self.config.damping_ratio * inertia * w - self.config.joint_damping, 0.0)
        self.model.actuator_gainprm[:, 0] = self._kp
        self.model.actuator_biasprm[:, 1] = -self._kp
        self.model.actuator_biasprm[:, 2] = -self._kv
        self._setpoint = q.copy()
        self._setpoint_velocity = np.zeros(self.dof)
        self._traj_t = np.zeros(1)
        self._traj_q = q[None].copy()
        self._traj_v: np.ndarray | None = None
        self._traj_start = 0.0
        self._pending = 0.0  # simulated time asked for but not yet stepped (s), below one step
        self._apply_control()

    @property
    def time(self) -> float:
        """Simulated time (s)."""
        return float(self.data.time)

    def joint_positions(self) -> np.ndarray:
        """(dof,) true joint readings (rad), noise-free."""
        return self.data.qpos[self._qadr].copy()

    def joint_velocities(self) -> np.ndarray:
        """(dof,) rad/s."""
        return self.data.qvel[self._dadr].copy()

    def joint_efforts(self) -> np.ndarray:
        """(dof,) N m (N for prismatic joints) the joint motors exert: PD plus gravity compensation."""
        return (self.data.qfrc_actuator[self._dadr] + self.data.qfrc_gravcomp[self._dadr]).copy()

    def tool_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """True tool pose (position (3,) m, rotation (3, 3)) in the base frame, at the current joints."""
        self._mj.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self._site].copy(), self.data.site_xmat[self._site].reshape(3, 3).copy()

    def measure(self) -> SimMeasurement:
        """Joint readings and tool pose as the robot reports them (with the configured noise)."""
        cfg = self.config
        q, qd = self.joint_positions(), self.joint_velocities()
        p, R = self.tool_pose()
        if cfg.joint_noise_std > 0:
            q = q + self._rng.normal(0.0, cfg.joint_noise_std, self.dof)
        if cfg.tool_position_noise_std > 0:
            p = p + self._rng.normal(0.0, cfg.tool_position_noise_std, 3)
        if cfg.tool_orientation_noise_std > 0:
            w = self._rng.normal(0.0, cfg.tool_orientation_noise_std, 3)
            angle = float(np.linalg.norm(w))
            if angle > 0:
                K = skew(w / angle)
                R = (np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * (K @ K)) @ R
        return SimMeasurement(self.time, q, qd, p, R)

    def setpoint(self) -> np.ndarray:
        """(dof,) where the controller wants the joints now (rad)."""
        return self._setpoint.copy()

    def tracking_error(self) -> np.ndarray:
        """(dof,) |setpoint - actual| (rad)."""
        return np.abs(self._setpoint - self.joint_positions())

    def goal(self) -> np.ndarray:
        """(dof,) last point of the current trajectory (rad)."""
        return self._traj_q[-1].copy()

    def trajectory_done(self) -> bool:
        """The setpoint has reached the trajectory's last point."""
        return self.time >= self._traj_start + self._traj_t[-1] and bool(np.allclose(self._setpoint, self._traj_q[-1], rtol=0.0, atol=1e-12))

    def settled(self) -> bool:
        """Trajectory finished and the arm at rest at its goal (within the configured tolerances)."""
        cfg = self.config
        return (
            self.trajectory_done()
            and float(np.max(np.abs(self.joint_positions() - self._traj_q[-1]))) <= cfg.settle_position_tolerance
            and float(np.max(np.abs(self.joint_velocities()))) <= cfg.settle_velocity_tolerance
        )

    # ------------------------------------------------------------------ commands
    def command_trajectory(self, points: np.ndarray, times: Sequence[float], velocities: np.ndarray | None = None) -> None:
        """Replace the current trajectory, as a joint trajectory controller does with a new one.

        Args:
            points: (N, dof) joint positions (rad).
            times: (N,) time from now (s) of each point, non-negative and strictly increasing.
            velocities: optional (N, dof) rad/s at each point (cubic Hermite between points);
                without them, positions are interpolated linearly.  The segment from the current
                setpoint to the first point is linear.

        The setpoint never moves faster than the joints' velocity limits nor accelerates beyond
        ``max_acceleration``: a trajectory timed too tightly is followed late, not violently.

        Raises:
            ValueError: shapes, non-finite values or times that are not increasing.
        """
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != self.dof or pts.shape[0] < 1:
            raise ValueError(f"points must have shape (N >= 1, {self.dof}), got {pts.shape}")
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        if t.shape[0] != pts.shape[0]:
            raise ValueError(f"times must have one entry per point ({pts.shape[0]}), got {t.shape[0]}")
        if not (np.all(np.isfinite(pts)) and np.all(np.isfinite(t))):
            raise ValueError("points and times must be finite")
        if t[0] < 0 or np.any(np.diff(t) <= 0):
            raise ValueError(f"times must be >= 0 and strictly increasing, got {t.tolist()}")
        v = None
        if velocities is not None:
            v = np.asarray(velocities, dtype=np.float64)
            if v.shape != pts.shape or not np.all(np.isfinite(v)):
                raise ValueError(f"velocities must be finite with the points' shape {pts.shape}, got {v.shape}")
        # prepend the current setpoint at t = 0 (a point at t = 0 itself replaces it)
        if t[0] > 0:
            t = np.concatenate([[0.0], t])
            pts = np.concatenate([self._setpoint[None], pts])
            if v is not None:
                v = np.concatenate([self._setpoint_velocity[None], v])
        self._traj_t, self._traj_q, self._traj_v = t, pts, v
        self._traj_start = self.time

    def hold(self) -> None:
        """Abort the trajectory and hold the current position (the controller's halt)."""
        q = self.joint_positions()
        self._traj_t, self._traj_q, self._traj_v = np.zeros(1), q[None], None
        self._traj_start = self.time
        self._setpoint = q
        self._setpoint_velocity = np.zeros(self.dof)

    def _reference(self, t: float) -> np.ndarray:
        T, Q, V = self._traj_t, self._traj_q, self._traj_v
        if t <= T[0]:
            return Q[0]
        if t >= T[-1]:
            return Q[-1]
        i = int(np.searchsorted(T, t, side="right")) - 1
        h = T[i + 1] - T[i]
        s = (t - T[i]) / h
        if V is None:
            return Q[i] + s * (Q[i + 1] - Q[i])
        s2, s3 = s * s, s * s * s
        return (2 * s3 - 3 * s2 + 1) * Q[i] + (s3 - 2 * s2 + s) * h * V[i] + (-2 * s3 + 3 * s2) * Q[i + 1] + (s3 - s2) * h * V[i + 1]

    def _setpoint_at_rest(self) -> bool:
        """The setpoint has reached the trajectory's last point, at rest (it will not move again)."""
        return (
            self.time >= self._traj_start + self._traj_t[-1]
            and bool(np.all(self._setpoint == self._traj_q[-1]))
            and not np.any(self._setpoint_velocity)
        )

    def _apply_control(self) -> None:
        # position actuator: force = kp (ctrl - q) - kv qd; ctrl = s + kv/kp v gives kp (s - q) + kv (v - qd)
        self.data.ctrl[:] = self._setpoint + (self._kv / self._kp) * self._setpoint_velocity

    def step(self, dt: float) -> int:
        """Advance the simulation by ``dt`` seconds in whole physics steps; returns the steps taken.

        A remainder below one step is kept and taken with the next call."""
        if not (math.isfinite(dt) and dt >= 0):
            raise ValueError(f"dt must be a finite number >= 0, got {dt}")
        h = self.model.opt.timestep
        # whole physics steps; the remainder carries over, so many small dt add up to the right time
        self._pending += dt
        n = int(math.floor(self._pending / h + 1e-9))
        self._pending = max(self._pending - n * h, 0.0)
        mj = self._mj
        a = self.config.max_acceleration
        for k in range(n):
            if self._setpoint_at_rest():
                # the setpoint stays put from here on: MuJoCo steps the rest in one call
                self._setpoint_velocity = np.zeros(self.dof)
                self._apply_control()
                mj.mj_step(self.model, self.data, n - k)
                break
            t = self.time + h - self._traj_start
            ref = self._reference(t)
            # velocity that reaches the reference this step, within the velocity limits ...
            v = np.clip((ref - self._setpoint) / h, -self._vmax, self._vmax)
            # ... and the acceleration limit; in the last segment, brake in time for the goal
            v = np.clip(v, self._setpoint_velocity - a * h, self._setpoint_velocity + a * h)
            if t >= self._traj_t[-2 if len(self._traj_t) > 1 else -1]:
                brake = np.sqrt(2.0 * 0.9 * a * np.abs(self._traj_q[-1] - self._setpoint))
                v = np.clip(v, -brake, brake)
            new = self._setpoint + v * h
            self._setpoint = np.where(np.abs(new - ref) <= 1e-12, ref, new)  # land exactly on the reference
            self._setpoint_velocity = v
            self._apply_control()
            mj.mj_step(self.model, self.data)
        return n
