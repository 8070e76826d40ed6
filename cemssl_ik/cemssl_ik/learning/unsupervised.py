"""Unsupervised training through the differentiable forward kinematics (Stephan et al.).

loss = ||FK(IM(p, z)) - p||^2  [+ w_rot * angle(R(IM(p, z)), R_target)^2 for pose targets]
       [+ w_lim * soft joint-limit violation^2]  [+ w_obs * sum over spheres of relu(r + margin - d)^2]

where d is the distance of every link origin on the chain to the sphere centre.  No ground-truth
joint values are used: the targets are FK of random joint samples, the loss only asks that the
predicted joints reach them.

``position_loss="distance"`` takes the square root of the task-space term (the rotation term
included, as one weighted distance), so that far-off samples do not dominate the batch's gradient
and the quantity minimized is the mean distance itself, the figure ``cemssl-ik eval`` reports.
The joint-limit and obstacle terms stay squared: next to a distance in metres they weigh far less
than next to its square, so raise their weights when a chain's limits or obstacles bind.

``position_loss="gauss-newton"`` replaces the task-space term by its Gauss-Newton form: with the
tip error e and the chain's Jacobian J at the predicted q (both held constant), the loss is
||q - (q - dq)||^2 with dq = J^T (J J^T + damping I)^-1 e, the damped least-squares step that would
bring q onto the target.  Its gradient with respect to q is the Gauss-Newton direction instead of
the steepest-descent direction J^T e, so joints the tip is insensitive to and targets near a
singularity are not learnt orders of magnitude slower than the rest.  The model itself is still
judged and used without any numerical refinement: the step only shapes the training signal.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..kinematics.chain import KinematicChain, damped_least_squares
from ..kinematics.limits import wrap_to_pi
from ..kinematics.transforms import rotation_angle, rotation_log
from ..models.generators import IKGenerator
from ..models.networks import hidden_precision
from .heldout import Evaluator
from .loop import StepTrainer
from .schedule import adam, weight_average
from .targets import sample_targets

__all__ = ["SphereObstacle", "FKLoss", "UnsupervisedConfig", "UnsupervisedTrainer"]


@dataclass(frozen=True)
class SphereObstacle:
    """A sphere to keep the chain's link origins away from. centre (m), radius (m), margin (m)."""

    center: tuple[float, float, float]
    radius: float
    margin: float = 0.02


def check_distance_scale(position_loss: str, distance_scale: float, name: str = "distance_scale") -> None:
    """A distance scale must be >= 0, and only the ``"distance"`` loss has one."""
    if not distance_scale >= 0:
        raise ValueError(f"{name} must be >= 0, got {distance_scale}")
    if distance_scale and position_loss != "distance":
        raise ValueError(f"{name} applies to the 'distance' FK loss only, got {distance_scale} with {position_loss!r}")


class FKLoss:
    """Per-sample FK losses (B,) for predicted joints ``q`` (B, dof) against targets.

    Args:
        chain: the kinematic chain (its FK is differentiable).
        rotation_weight: weight of the squared orientation angle (pose targets).
        limit_weight: weight of the squared joint-limit violation (radians / metres).
        obstacles: spheres for the obstacle distance loss.
        obstacle_weight: weight of the obstacle loss.
        position_loss: ``"squared"`` (||FK(q) - p||^2), ``"distance"`` (its square root, smoothed at
            zero: every sample's gradient has unit size, so the mean error is what is minimized,
            not the mean squared error) or ``"gauss-newton"`` (see the module text).
        distance_scale: with ``"distance"``, add d^2 / (2 * distance_scale) (m; 0: none): samples
            far beyond the scale weigh in proportion to their error again, as in the squared loss,
            so that rare large misses are still pulled in while the bulk trains on its distance.
        damping: damping of the Gauss-Newton step (m^2; rotation rows are scaled by sqrt(rotation_weight)).
    """

    POSITION_LOSSES = ("squared", "distance", "gauss-newton")
    #: smoothing of the ``"distance"`` loss at zero error (m): sqrt(d^2 + s^2) - s
    DISTANCE_SMOOTHING = 1e-8

    def __init__(
        self,
        chain: KinematicChain,
        rotation_weight: float = 0.1,
        limit_weight: float = 1.0,
        obstacles: Sequence[SphereObstacle] = (),
        obstacle_weight: float = 1.0,
        position_loss: str = "squared",
        damping: float = 1e-4,
        distance_scale: float = 0.0,
    ) -> None:
        if position_loss not in self.POSITION_LOSSES:
            raise ValueError(f"position_loss must be one of {self.POSITION_LOSSES}, got {position_loss!r}")
        if not damping > 0:
            raise ValueError(f"damping must be > 0, got {damping}")
        check_distance_scale(position_loss, distance_scale)
        self.position_loss, self.damping, self.distance_scale = position_loss, damping, distance_scale
        self.chain = chain
        self.rotation_weight = rotation_weight
        self.limit_weight = limit_weight
        self.obstacles = tuple(obstacles)
        self.obstacle_weight = obstacle_weight
        self.lower, self.upper = chain.learning_limits()

    def __call__(self, q: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor | None = None) -> torch.Tensor:
        if self.position_loss == "gauss-newton":
            loss = self._gauss_newton(q, position, rotation)
        else:
            fk = self.chain.forward(q)
            loss = ((fk.position - position.to(q)) ** 2).sum(-1)
            if rotation is not None and self.rotation_weight:
                loss = loss + self.rotation_weight * rotation_angle(fk.rotation, rotation.to(q)) ** 2
            if self.position_loss == "distance":
                s = self.DISTANCE_SMOOTHING
                squared = loss
                loss = torch.sqrt(squared + s * s) - s
                if self.distance_scale:
                    loss = loss + squared / (2 * self.distance_scale)
        if self.limit_weight:
            lo = torch.as_tensor(self.lower, dtype=q.dtype, device=q.device)
            hi = torch.as_tensor(self.upper, dtype=q.dtype, device=q.device)
            loss = loss + self.limit_weight * ((torch.relu(lo - q) + torch.relu(q - hi)) ** 2).sum(-1)
        if self.obstacles and self.obstacle_weight:
            _, frames = self.chain.link_frames(q)
            origins = frames[..., :3, 3]  # (B, L, 3)
            for ob in self.obstacles:
                d = (origins - torch.as_tensor(ob.center, dtype=q.dtype, device=q.device)).norm(dim=-1)
                loss = loss + self.obstacle_weight * (torch.relu(ob.radius + ob.margin - d) ** 2).sum(-1)
        return loss

    def _gauss_newton(self, q: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor | None) -> torch.Tensor:
        """||q - stop_grad(q - dq)||^2 with dq the damped least-squares step onto the target."""
        with torch.no_grad():
            fk = self.chain.forward_with_jacobian(q.detach())
            err = fk.position - position.to(q)  # (B, 3)
            J = fk.jacobian[:, :3]
            if rotation is not None and self.rotation_weight:
                rot_err = rotation_log(fk.rotation @ rotation.to(q).transpose(-1, -2))  # base frame, axis * angle
                w = self.rotation_weight**0.5
                err = torch.cat([err, w * rot_err], dim=-1)
                J = torch.cat([J, w * fk.jacobian[:, 3:]], dim=1)
            goal = q.detach() - damped_least_squares(J, err, self.damping)
        return ((q - goal) ** 2).sum(-1)


@dataclass
class UnsupervisedConfig:
    """Hyperparameters of FK-loss training.

    Attributes:
        steps: optimizer steps; each draws a fresh batch of targets (a functionally infinite set).
        batch_size: targets per step and member.
        lr, lr_final: Adam learning rate, cosine-decayed to lr_final.
        rotation_weight, limit_weight, obstacle_weight: loss weights (see :class:`FKLoss`).
        obstacles: list of {"center": [x, y, z], "radius": r, "margin": m}.
        position_loss: ``"squared"``, ``"distance"`` or ``"gauss-newton"`` (see :class:`FKLoss`).
        distance_scale: see :class:`FKLoss` (m; 0: none).
        eval_every: evaluate every this many steps (0: never).
        max_seconds: wall-time budget (0: none).
        seed: RNG seed.
        adam_eps: Adam's epsilon (see :func:`~.schedule.adam`: the FK loss is in m^2, so torch's
            default 1e-8 can dominate Adam's denominator once the model is sub-millimetre precise).
        bf16_fraction: part of the run (by steps or time budget, as the learning-rate schedule) in
            which the networks' hidden-to-hidden products run in bfloat16 (see
            :func:`~cemssl_ik.models.networks.hidden_precision`; 0: never).  Faster steps while the
            model is coarse; the rest of the run, which makes it precise, is in full precision.
        ema_decay: keep an exponential moving average of the weights with this decay (see
            :func:`~.schedule.weight_average`; 0: none), evaluated next to the trained weights;
            the run ends with whichever of the two is better on its held-out targets.
        train_residual: train only the model's residual stage (``ModelConfig.residual_stage``), the
            first network frozen: the stage learns the frozen network's remaining error.
        anchor_weight: weight of a pull of each answer towards the starting model's answer for the
            same target and latent (squared joint difference in rad^2, wrapped), decayed linearly to 0
            over the run (0: none).  Fine-tuning a generative model by the FK loss alone lets its
            samples drift together (its class coverage fell from 0.87 to 0.61 in 5 minutes): the pull
            keeps each sample near where it started, so the FK loss moves it onto the nearest
            solution and the model keeps its spread over the solutions.
    """

    steps: int = 20000
    batch_size: int = 512
    lr: float = 1e-3
    lr_final: float = 1e-5
    rotation_weight: float = 0.1
    limit_weight: float = 1.0
    obstacle_weight: float = 1.0
    obstacles: list = field(default_factory=list)
    position_loss: str = "squared"
    distance_scale: float = 0.0
    eval_every: int = 1000
    max_seconds: float = 0.0
    seed: int = 0
    adam_eps: float = 1e-8
    bf16_fraction: float = 0.0
    ema_decay: float = 0.0
    train_residual: bool = False
    anchor_weight: float = 0.0

    def __post_init__(self) -> None:
        if not (self.anchor_weight >= 0 and self.anchor_weight < float("inf")):
            raise ValueError(f"anchor_weight must be a finite number >= 0, got {self.anchor_weight}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not self.adam_eps > 0:
            raise ValueError(f"adam_eps must be > 0, got {self.adam_eps}")
        if not 0.0 <= self.bf16_fraction <= 1.0:
            raise ValueError(f"bf16_fraction must be in [0, 1], got {self.bf16_fraction}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}")
        if not (self.lr > 0 and self.lr_final > 0):
            raise ValueError(f"learning rates must be > 0, got lr={self.lr}, lr_final={self.lr_final}")
        if self.position_loss not in FKLoss.POSITION_LOSSES:
            raise ValueError(f"position_loss must be one of {FKLoss.POSITION_LOSSES}, got {self.position_loss!r}")
        check_distance_scale(self.position_loss, self.distance_scale)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        if not self.anchor_weight:  # recorded only when used: records from before it existed stay equal
            del out["anchor_weight"]
        return out


class UnsupervisedTrainer(StepTrainer):
    """Trains any :class:`IKGenerator`'s inverse pass with :class:`FKLoss` (all members at once)."""

    def __init__(self, model: IKGenerator, chain: KinematicChain, config: UnsupervisedConfig, evaluator: Evaluator | None = None) -> None:
        self.model, self.chain, self.config = model, chain, config
        self.evaluator = evaluator  # held-out error of a model; None: the default on this chain and seed
        obstacles = [SphereObstacle(tuple(o["center"]), float(o["radius"]), float(o.get("margin", 0.02))) for o in config.obstacles]
        if model.num_classes:
            raise ValueError("the FK loss cannot teach branch classes (any branch reaching the target scores the same): pretrain a branch model by regression (--pretrain-steps) instead")
        self.loss_fn = FKLoss(chain, config.rotation_weight, config.limit_weight, obstacles, config.obstacle_weight, config.position_loss, distance_scale=config.distance_scale)
        self.params = list(model.generator_parameters())
        #: generator parameters this trainer leaves as they are (the first network when training a residual stage)
        self.frozen: list[torch.nn.Parameter] = []
        if config.train_residual:
            stage = list(getattr(model, "residual_parameters", lambda: iter(()))())
            if not stage:
                raise ValueError("train_residual: the model has no residual stage (ModelConfig.residual_stage)")
            ids = {id(p) for p in stage}
            self.frozen = [p for p in self.params if id(p) not in ids]
            self.params = stage
        self.optimizer = adam(self.params, config.lr, eps=config.adam_eps)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step_count = 0
        self._started: float | None = None
        self.history: list[dict] = []
        if config.ema_decay:
            self.average = weight_average(model, config.ema_decay)
        #: a frozen copy of the starting model (``anchor_weight``)
        self.anchor: IKGenerator | None = None
        if config.anchor_weight:
            self.anchor = copy.deepcopy(model).eval().requires_grad_(False)
        self._periodic = torch.as_tensor(chain.periodic)

    def step(self) -> dict[str, float]:
        m, c = self.model, self.config
        M, B = m.num_members, c.batch_size
        t = sample_targets(self.chain, M * B, self.generator)
        pose = m.config.target == "pose"
        cond = m.encode_targets(t.position, t.rotation if pose else None).reshape(M, B, -1)
        z = torch.randn(M, B, m.latent_dim, generator=self.generator, dtype=torch.float64).to(m.device, m.dtype)
        for g in self.optimizer.param_groups:
            g["lr"] = self.current_lr()
        # frozen parameters take no gradient, so autograd records nothing for the first network
        # when only the residual stage trains (its forward pass then costs no backward)
        for p in self.frozen:
            p.requires_grad_(False)
        try:
            with hidden_precision(m, torch.bfloat16 if self.current_progress() < c.bf16_fraction else None):
                raw = m.generate(cond, z)
            q = m.decode(raw, t.position.reshape(M, B, 3)).reshape(M * B, -1)
            loss = self.loss_fn(q, t.position.to(m.device), t.rotation.to(m.device) if pose else None).mean() * M
            weight = c.anchor_weight * (1.0 - self.current_progress())
            if self.anchor is not None and weight > 0:
                with torch.no_grad():
                    q0 = self.anchor.decode(self.anchor.generate(cond, z), t.position.reshape(M, B, 3)).reshape(M * B, -1)
                d = q - q0
                d = torch.where(self._periodic.to(d.device), wrap_to_pi(d), d)
                loss = loss + weight * (d**2).sum(-1).mean() * M
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            for p in self.frozen:
                p.requires_grad_(True)
        self.optimizer.step()
        return {"loss": float(loss.detach()) / M}
