"""CEMSSL with a black-box forward model: the arm itself, a simulator, any FK it cannot differentiate.

Per iteration (CEMSSL's Algorithm 1, with every sample kept):

1. **sampling** - desired targets p from the target set, latents z ~ N(0, I) (branch classes drawn
   uniformly); q = IM(p, z), plus exploration noise annealed over the budget actually used;
2. **forward model** - p' = FM(q) for the whole batch: the only contact with the arm;
3. **training** - the measured pairs join the replay set (every pair ever measured is a true
   (reached pose, joints) pair of the arm); E epochs of MSE IM(p', z) -> q over the replay set
   (optionally plus a task-space term, ``task_weight``);
4. **evaluation** - every ``eval_every`` iterations the model is asked for held-out targets (poses
   the forward model reached from random joints) and its answers are measured by the forward model;
   the best weights so far are kept.

Nothing here differentiates a kinematic chain or evaluates one for the arm: the chain passed in
gives the joint limits and periodicity (which a commander of the arm needs anyway) and, with
``targets="workspace"``, a sampler of desired targets (desired targets need not be reachable: the
model is trained on what was reached).  Only when asked (``projection="nominal"`` or
``task_weight`` > 0) is the nominal chain's Jacobian at the measured joints used, to weigh joint
differences by how far they move the tool; the forward model is still only called.  Every
forward-model evaluation counts against ``max_evaluations``; progress (for the learning-rate and
exploration schedules) is the largest of the iteration, evaluation and time fractions used.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..kinematics.chain import KinematicChain, damped_least_squares
from ..kinematics.limits import wrap_into_range, wrap_to_pi
from ..models.generators import IKGenerator
from .forward_model import ForwardModel, ForwardResult
from .schedule import adam, cosine_lr, flush_denormals
from .targets import sample_targets

__all__ = ["BlackBoxConfig", "BlackBoxCEMSSL", "BlackBoxStats", "TARGET_SOURCES", "PROJECTIONS"]

#: where desired targets come from (:attr:`BlackBoxConfig.targets`)
TARGET_SOURCES = ("workspace", "reached", "grown")
#: how training labels are formed (:attr:`BlackBoxConfig.projection`)
PROJECTIONS = ("none", "nominal")


@dataclass
class BlackBoxConfig:
    """Budgets and hyperparameters of black-box CEMSSL.

    Attributes:
        iterations: maximum sampling / training iterations.
        samples_per_iteration: forward-model evaluations per iteration, shared by the members.
        max_evaluations: budget of forward-model evaluations, held-out measurements included (0: none).
        max_seconds: wall-time budget (0: none).
        epochs: passes over the replay set per iteration.
        training_batch: samples per member and training step.
        inference_batch: samples per member and inference call.
        lr, lr_final: Adam learning rate, cosine-decayed over the budget used.
        adam_eps: Adam's epsilon (see :func:`~.schedule.adam`: torch's 1e-8 damps the steps once
            the loss's gradients are that small).
        replay: iterations whose samples are trained on (0: every sample ever measured).  Samples
            of older models carry those models' choice among the redundant solutions; keeping them
            all was the better choice on the UR3 (see docs/lab-notes.md).
        exploration_noise: std of Gaussian noise on the inferred joints (fraction of each joint's
            range) at the start, decaying linearly to 0 at ``exploration_fraction`` of the budget.
            0 for adapting a trained model; > 0 to grow the reached set from a fresh model.
        exploration_fraction: part of the budget with exploration.
        targets: ``workspace`` (desired targets from the chain's workspace sampler), ``reached``
            (from poses the forward model reached in earlier iterations; the first iteration uses
            the workspace sampler) or ``grown``: the workspace sampler's targets, a share
            ``grown_share`` of them pushed outwards from the sampler's centre by a factor drawn
            uniformly between 1 and the ratio of the reach seen so far to the sampler's (99th
            percentiles of the distances to that centre of every position measured and of the
            sampler's).  An arm longer than its chain reaches beyond the sampler's workspace; those
            targets follow it there as far as it has been measured to reach, and no farther.
        grown_share: share of the desired targets pushed outwards with ``targets="grown"``.
        eval_targets: held-out targets; measuring them costs ``eval_targets`` evaluations once,
            and each evaluation ``eval_targets`` more.
        eval_every: evaluate every this many iterations (the last iteration is always evaluated).
        keep_best: restore the best evaluated weights at the end (the starting ones included).
        task_weight: weight of a task-space term added to the joint MSE: the squared tool
            displacement (in cm, rotation rows of pose models at 10 cm per rad) that the nominal
            Jacobian at the measured joints gives for the difference between the model's answer and
            the label.  Joint errors that barely move the tool (near the null space, far from the
            base) then cost little and those that move it far cost much, which the MSE on
            normalized joints does not see.  0: Algorithm 1's MSE alone.  Needs the nominal
            Jacobian (it only weighs directions: a changed arm's is close to it).
        projection: ``none`` trains on the measured joints q (Algorithm 1); ``nominal`` trains on
            ``q_hat + P (q - q_hat)``, q_hat = IM(p', z) the current model's answer and P = J^+ J the
            projector onto the task directions of the nominal chain's Jacobian at q, recomputed
            every iteration for the whole replay set.  Measured joints of older models carry their
            choice among the redundant solutions, which conflicts with the current model's; the
            projection keeps from each sample only the part that moves the tool, so old and new
            samples agree.  The Jacobian only picks directions: the nominal one serves a changed
            arm (its error is second order in the label's distance to the model's answer).
        seed: RNG seed of targets, latents, noise and shuffling.
    """

    iterations: int = 20
    samples_per_iteration: int = 2000
    max_evaluations: int = 0
    max_seconds: float = 0.0
    epochs: int = 10
    training_batch: int = 128
    inference_batch: int = 512
    lr: float = 3e-4
    lr_final: float = 3e-4
    adam_eps: float = 1e-8
    replay: int = 0
    exploration_noise: float = 0.0
    exploration_fraction: float = 0.5
    targets: str = "workspace"
    grown_share: float = 0.5
    eval_targets: int = 500
    eval_every: int = 1
    keep_best: bool = True
    projection: str = "none"
    task_weight: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("iterations", "samples_per_iteration", "epochs", "training_batch", "inference_batch", "eval_targets"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("max_evaluations", "replay", "eval_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        for name in ("lr", "lr_final"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive finite number, got {getattr(self, name)!r}")
        if not (math.isfinite(self.max_seconds) and self.max_seconds >= 0):
            raise ValueError(f"max_seconds must be >= 0, got {self.max_seconds!r}")
        if not (isinstance(self.adam_eps, (int, float)) and math.isfinite(self.adam_eps) and self.adam_eps > 0):
            raise ValueError(f"adam_eps must be a positive finite number, got {self.adam_eps!r}")
        if not (isinstance(self.task_weight, (int, float)) and math.isfinite(self.task_weight) and self.task_weight >= 0):
            raise ValueError(f"task_weight must be a finite number >= 0, got {self.task_weight!r}")
        if not (math.isfinite(self.exploration_noise) and self.exploration_noise >= 0 and 0 <= self.exploration_fraction <= 1):
            raise ValueError("exploration_noise must be >= 0 and exploration_fraction in [0, 1]")
        if not (isinstance(self.grown_share, (int, float)) and 0 <= self.grown_share <= 1):
            raise ValueError(f"grown_share must be in [0, 1], got {self.grown_share!r}")
        if self.targets not in TARGET_SOURCES:
            raise ValueError(f"targets must be one of {TARGET_SOURCES}, got {self.targets!r}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {self.projection!r}")
        if self.keep_best and not self.eval_every:
            raise ValueError("keep_best needs eval_every > 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class BlackBoxStats:
    """What one iteration did.  Errors in metres, times in seconds."""

    iteration: int
    evaluations: int  # forward-model evaluations so far, held-out measurements included
    sampled_error_mean: float  # desired vs reached of this iteration's samples (before training)
    valid_fraction: float
    replay_size: int
    train_loss: float
    lr: float
    exploration: float
    forward_seconds: float
    training_seconds: float
    eval_error_mean: float | None = None
    eval_error_median: float | None = None
    extra: dict = field(default_factory=dict)


class BlackBoxCEMSSL:
    """Trains ``model`` by CEMSSL through ``forward_model`` alone.

    Args:
        model: any :class:`IKGenerator`; only its inverse-pass parameters train.
        chain: joint limits and periodicity of the arm, and the workspace sampler of desired targets.
        config: budgets and hyperparameters.
        forward_model: the arm (or its stand-in); the only source of reached poses.
        random_joints: n -> (n, dof) joint values the forward model may be sent to, for the
            held-out targets (default: uniform within the chain's learning limits).  A real arm
            passes its safety layer's sampler here.
    """

    def __init__(
        self,
        model: IKGenerator,
        chain: KinematicChain,
        config: BlackBoxConfig,
        forward_model: ForwardModel,
        random_joints: Callable[[int], torch.Tensor] | None = None,
    ) -> None:
        self.model, self.chain, self.config, self.forward_model = model, chain, config, forward_model
        self.params = list(model.generator_parameters())
        self.optimizer = adam(self.params, config.lr, eps=config.adam_eps)
        self.generator = torch.Generator().manual_seed(config.seed)
        self._random_joints = random_joints or (lambda n: chain.sample_configurations(n, self.generator, dtype=torch.float64))
        self._lower, self._upper = (torch.as_tensor(v, dtype=torch.float64) for v in chain.learning_limits())
        self._periodic = torch.as_tensor(chain.periodic)
        self.iteration = 0
        self.evaluations = 0
        self.history: list[dict] = []
        #: per iteration: reached position (M, n, 3), rotation (M, n, 3, 3), latent (M, n, noise_dim), measured joints (M, n, dof), valid (M, n)
        self.replay: list[dict[str, torch.Tensor]] = []
        self._eval_set: ForwardResult | None = None
        #: the workspace sampler's centre and 99th-percentile distance to it (``targets="grown"``)
        self._workspace: tuple[torch.Tensor, torch.Tensor] | None = None
        self._eval_latent: torch.Tensor | None = None
        self._started: float | None = None
        self.initial_error: float | None = None
        self.best_error = math.inf
        self.best_iteration = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ budget and schedules
    def current_progress(self) -> float:
        """Largest fraction used of the iteration, evaluation and time budgets."""
        c = self.config
        done = self.iteration / c.iterations
        if c.max_evaluations:
            done = max(done, self.evaluations / c.max_evaluations)
        if c.max_seconds and self._started is not None:
            done = max(done, (time.perf_counter() - self._started) / c.max_seconds)
        return min(1.0, done)

    def current_lr(self) -> float:
        return cosine_lr(self.config.lr, self.config.lr_final, self.current_progress())

    def current_exploration(self) -> float:
        c = self.config
        if c.exploration_noise == 0 or c.exploration_fraction == 0:
            return 0.0
        return c.exploration_noise * max(0.0, 1.0 - self.current_progress() / c.exploration_fraction)

    def _fits_another(self) -> bool:
        """Whether one more iteration (with its evaluation) stays within the budgets."""
        c = self.config
        if self.iteration >= c.iterations:
            return False
        if c.max_evaluations and self.evaluations + self._per_member() * self.model.num_members + c.eval_targets > c.max_evaluations:
            return False
        return not (c.max_seconds and self._started is not None and time.perf_counter() - self._started > c.max_seconds)

    def _per_member(self) -> int:
        return max(1, self.config.samples_per_iteration // self.model.num_members)

    # ------------------------------------------------------------------ forward model and model
    def _measure(self, q: torch.Tensor) -> ForwardResult:
        res = self.forward_model.evaluate(q)
        self.evaluations += q.shape[0]
        return res

    def _wrap(self, q: torch.Tensor) -> torch.Tensor:
        """Joints into the learning range (revolute joints: one period), so they are encodable."""
        return wrap_into_range(q, self._lower, self._periodic)

    def _condition(self, position: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        m = self.model
        M = position.shape[0]
        cond = m.encode_targets(position.reshape(-1, 3).to(m.device, m.dtype), rotation.reshape(-1, 3, 3).to(m.device, m.dtype) if m.config.target == "pose" else None)
        return cond.reshape(M, -1, cond.shape[-1])

    @torch.no_grad()
    def _infer(self, position: torch.Tensor, rotation: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """q = IM(p, z) for (M, n) targets, member by member; (M, n, dof) float64."""
        m, b = self.model, self.config.inference_batch
        m.eval()
        cond = self._condition(position, rotation)
        out = torch.cat([m.generate(cond[:, s : s + b], z[:, s : s + b]) for s in range(0, cond.shape[1], b)], dim=1)
        return m.decode(out, position.to(m.device, m.dtype)).double().cpu()

    def _latents(self, M: int, n: int) -> torch.Tensor:
        m = self.model
        z = torch.randn(M, n, m.noise_dim, generator=self.generator, dtype=torch.float64).to(m.device, m.dtype)
        if m.num_classes:  # every branch is asked for
            z = m.with_classes(z, torch.randint(m.num_classes, (M, n), generator=self.generator))
        return z

    def _desired(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(count, 3), (count, 3, 3) desired targets from the configured source."""
        reached = [r for r in self.replay if r["valid"].any()]
        if self.config.targets == "reached" and reached:
            pos = torch.cat([r["position"][r["valid"]] for r in reached])
            rot = torch.cat([r["rotation"][r["valid"]] for r in reached])
            idx = torch.randint(len(pos), (count,), generator=self.generator)
            return pos[idx], rot[idx]
        t = sample_targets(self.chain, count, self.generator)
        if self.config.targets == "grown" and reached:
            return self._grow(t.position, torch.cat([r["position"][r["valid"]] for r in reached])), t.rotation
        return t.position, t.rotation

    def _grow(self, position: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        """A share of ``position`` pushed outwards, as far as ``measured`` shows the arm reaches
        beyond the workspace sampler (see :attr:`BlackBoxConfig.targets`)."""
        if self._workspace is None:  # the sampler's centre and reach, from a fixed large draw
            sample = sample_targets(self.chain, 20_000, torch.Generator().manual_seed(self.config.seed + 2)).position
            centre = sample.mean(0)
            self._workspace = (centre, torch.quantile((sample - centre).norm(dim=-1), 0.99))
        centre, reach = self._workspace
        ratio = max(1.0, float(torch.quantile((measured.to(centre) - centre).norm(dim=-1)[-100_000:], 0.99) / reach))
        k = int(round(len(position) * self.config.grown_share))
        scale = 1.0 + (ratio - 1.0) * torch.rand(k, 1, generator=self.generator, dtype=position.dtype)
        out = position.clone()
        out[:k] = centre.to(position) + (position[:k] - centre.to(position)) * scale
        return out

    # ------------------------------------------------------------------ one iteration
    def sample(self) -> tuple[float, float, float]:
        """Steps 1-2; the measured pairs join the replay set.  Returns (sampled error, valid fraction, seconds in the forward model)."""
        m, M, n = self.model, self.model.num_members, self._per_member()
        position, rotation = self._desired(M * n)
        position, rotation = position.reshape(M, n, 3), rotation.reshape(M, n, 3, 3)
        z = self._latents(M, n)
        q = self._infer(position, rotation, z)
        sigma = self.current_exploration()
        if sigma > 0:
            q = q + sigma * (self._upper - self._lower) * torch.randn(q.shape, generator=self.generator, dtype=q.dtype)
            q = torch.maximum(torch.minimum(self._wrap(q), self._upper), self._lower)
        t0 = time.perf_counter()
        res = self._measure(q.reshape(M * n, -1))
        seconds = time.perf_counter() - t0
        valid = (res.valid & torch.isfinite(res.q).all(-1) & torch.isfinite(res.position).all(-1)).reshape(M, n)
        # invalid samples keep the commanded joints and desired pose (never NaN) and weight zero
        ok = valid.reshape(-1, 1)
        reached_q = self._wrap(torch.where(ok, res.q.double(), q.reshape(M * n, -1)).reshape(M, n, -1))
        reached_pos = torch.where(ok, res.position.double(), position.reshape(-1, 3)).reshape(M, n, 3)
        reached_rot = torch.where(ok[..., None], res.rotation.double(), rotation.reshape(-1, 3, 3)).reshape(M, n, 3, 3)
        sample = {"position": reached_pos, "rotation": reached_rot, "z": m.relabel(z, reached_q.to(z)).cpu(), "q": reached_q, "valid": valid}
        if self.config.projection == "nominal" or self.config.task_weight > 0:
            rows = 6 if m.config.target == "pose" else 3
            sample["jacobian"] = self.chain.jacobian(reached_q.reshape(M * n, -1))[:, :rows].reshape(M, n, rows, -1)
        self.replay.append(sample)
        if self.config.replay:
            del self.replay[: -self.config.replay]
        err = (reached_pos - position).norm(dim=-1)
        return (float(err[valid].mean()) if valid.any() else math.nan), float(valid.double().mean()), seconds

    def train(self) -> float:
        """Step 3: E epochs of MSE IM(p', z) -> q over the replay set (plus the task-space term when
        ``task_weight`` > 0), every member on its own samples."""
        m, c = self.model, self.config
        for g in self.optimizer.param_groups:
            g["lr"] = self.current_lr()
        cat = {k: torch.cat([r[k] for r in self.replay], dim=1) for k in self.replay[0]}
        M, N = cat["valid"].shape
        cond = self._condition(cat["position"], cat["rotation"])
        q = self._project(cat) if c.projection == "nominal" else cat["q"]
        position = cat["position"].to(m.device, m.dtype)
        target = m.normalize_joints(q.to(m.device, m.dtype), position)
        z, weight = cat["z"].to(m.device, m.dtype), cat["valid"].to(m.device, m.dtype)
        if c.task_weight > 0:
            label = q.to(m.device, m.dtype)
            # tool displacement per joint step, in cm (rotation rows: 10 cm per rad)
            rows = cat["jacobian"].shape[2]
            unit = torch.tensor([100.0, 100.0, 100.0, 10.0, 10.0, 10.0][:rows], dtype=m.dtype, device=m.device)
            jac = cat["jacobian"].to(m.device, m.dtype) * unit[:, None]
            periodic = self._periodic.to(m.device)
        m.train()
        losses = []
        for _ in range(c.epochs):
            perm = torch.argsort(torch.rand(M, N, generator=self.generator), dim=1).to(m.device)
            for s in range(0, N, c.training_batch):
                idx = perm[:, s : s + c.training_batch]

                def pick(x: torch.Tensor) -> torch.Tensor:
                    return torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))

                w = torch.gather(weight, 1, idx)
                out = m.generate(pick(cond), pick(z))
                per_sample = ((out - pick(target)) ** 2).mean(-1)
                if c.task_weight > 0:
                    dq = m.decode(out, pick(position)) - pick(label)
                    dq = torch.where(periodic, wrap_to_pi(dq), dq)
                    J = torch.gather(jac, 1, idx[..., None, None].expand(-1, -1, *jac.shape[2:]))
                    per_sample = per_sample + c.task_weight * (J @ dq.unsqueeze(-1)).squeeze(-1).pow(2).sum(-1)
                loss = (per_sample * w).sum() / w.sum().clamp_min(1.0) * M
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                losses.append(loss.detach())
        m.eval()
        return float(torch.stack(losses).mean()) if losses else math.nan

    @torch.no_grad()
    def _project(self, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """Labels ``q_hat + P (q - q_hat)`` (see :attr:`BlackBoxConfig.projection`); where the model's
        answer is far from q (another branch, early exploration) the measured q itself."""
        q_hat = self._infer(data["position"], data["rotation"], data["z"].to(self.model.device, self.model.dtype))
        diff = data["q"] - q_hat
        diff = torch.where(self._periodic, wrap_to_pi(diff), diff)
        J = data["jacobian"]
        step = damped_least_squares(J, (J @ diff.unsqueeze(-1)).squeeze(-1), 1e-10)
        near = diff.abs().amax(-1, keepdim=True) < 0.3
        return torch.where(near, self._wrap(q_hat + step), data["q"])

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """(mean, median) position error in metres of the model's answers for the held-out targets,
        measured by the forward model (inf when it measured none of them)."""
        m, M = self.model, self.model.num_members
        if self._eval_set is None:
            res = self._measure(self._random_joints(max(1, self.config.eval_targets // M) * M).double())
            keep = torch.nonzero(res.valid & torch.isfinite(res.position).all(-1))[:, 0]
            keep = keep[: len(keep) // M * M]  # every member answers its own share
            if not len(keep):
                raise RuntimeError("the forward model measured too few of the held-out configurations")
            self._eval_set = ForwardResult(res.q[keep], res.position[keep].double(), res.rotation[keep].double(), res.valid[keep])
            self._eval_latent = torch.randn(len(keep), m.noise_dim, generator=torch.Generator().manual_seed(self.config.seed + 1), dtype=torch.float64)
        e = self._eval_set
        pos, rot = e.position.reshape(M, -1, 3), e.rotation.reshape(M, -1, 3, 3)
        z = self._eval_latent.reshape(M, -1, m.noise_dim).to(m.device, m.dtype)
        if m.num_classes:  # every branch asked for in turn
            z = m.with_classes(z, torch.arange(z.shape[1]).remainder(m.num_classes).expand(M, -1))
        res = self._measure(self._infer(pos, rot, z).reshape(-1, self.chain.dof))
        err = (res.position.double() - e.position).norm(dim=-1)
        err = err[res.valid & torch.isfinite(err)]  # answers the forward model failed on (timeouts) are not errors of the model
        return (float(err.mean()), float(err.median())) if len(err) else (math.inf, math.inf)

    def step(self) -> BlackBoxStats:
        """One iteration: sampling, forward model, training, and the evaluation when due."""
        sampled, valid, fm_seconds = self.sample()
        t0 = time.perf_counter()
        loss = self.train()
        self.iteration += 1
        stats = BlackBoxStats(
            iteration=self.iteration, evaluations=self.evaluations, sampled_error_mean=sampled, valid_fraction=valid,
            replay_size=int(sum(int(r["valid"].sum()) for r in self.replay)), train_loss=loss, lr=self.current_lr(),
            exploration=self.current_exploration(), forward_seconds=fm_seconds, training_seconds=time.perf_counter() - t0,
        )  # fmt: skip
        c = self.config
        if c.eval_every and (self.iteration % c.eval_every == 0 or not self._fits_another()):
            stats.eval_error_mean, stats.eval_error_median = self.evaluate()
            stats.evaluations = self.evaluations
            if c.keep_best and stats.eval_error_mean < self.best_error:
                self.best_error, self.best_iteration = stats.eval_error_mean, self.iteration
                self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.history.append(dataclasses.asdict(stats))
        return stats

    def run(self, callback: Callable[[BlackBoxStats], None] | None = None) -> str:
        """Iterate within the budgets; returns the stop reason (iterations | evaluations | time budget)."""
        with flush_denormals():
            self._started = time.perf_counter()
            c = self.config
            if c.keep_best and self.iteration == 0 and self._best_state is None:
                # the starting weights are a candidate: a short run may end worse than it began
                self.initial_error = self.best_error = self.evaluate()[0]
                self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            while self._fits_another():
                stats = self.step()
                if callback is not None:
                    callback(stats)
            self.restore_best()
        if self.iteration >= c.iterations:
            return "iterations"
        return "time budget" if c.max_seconds and time.perf_counter() - self._started > c.max_seconds else "evaluations"

    def restore_best(self) -> bool:
        """Load the best evaluated weights if the last evaluation was worse (``keep_best``)."""
        evals = [h["eval_error_mean"] for h in self.history if h["eval_error_mean"] is not None]
        if not self.config.keep_best or self._best_state is None or (evals and evals[-1] <= self.best_error):
            return False
        self.model.load_state_dict(self._best_state)
        return True

    def summary(self) -> dict:
        """What the run did, for a checkpoint's provenance (no per-iteration history)."""
        kept = self.best_iteration if self.config.keep_best else self.iteration
        return {
            "phase": "blackbox_cemssl",
            "config": self.config.to_dict(),
            "iterations": self.iteration,
            "forward_evaluations": self.evaluations,
            "initial_eval_error_mean": self.initial_error,
            "best_eval_error_mean": self.best_error if math.isfinite(self.best_error) else None,
            "best_iteration": kept,
            "weights_survived": kept > 0,
        }
