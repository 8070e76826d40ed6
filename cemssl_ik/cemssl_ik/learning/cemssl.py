"""CEMSSL (the CEMSSL paper, Algorithm 1): coordinated sampling and training of a latent-conditioned inverse model.

Per iteration t = 1..T:

1. **sampling** - draw targets p from the unlabeled set U and latents z ~ N(0, I); batch-infer
   q = IM(p, z) with the current model (every ensemble member infers its own share);
2. **forward model** - evaluate all q in one vectorized call: p' = FM(q) (failed samples dropped);
3. **training** - for E epochs, fit IM(p', z) -> q with MSE in the codec's normalized space.

The model learns, for each (p', z), the q that actually reached p'; as it improves, p' approaches p.
EMSSL (the EMSSL paper) is the same loop with ``latent_dim = 0``.  Any :class:`IKGenerator` can be trained
or fine-tuned this way (the unified framework, the CEMSSL paper, §III-C): only its inverse-pass parameters
are updated.
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
from ..models.networks import hidden_precision
from ..seeds import VALIDATION_SAMPLING_SEED_OFFSET, VALIDATION_SEED_OFFSET
from .forward_model import AnalyticForwardModel, ForwardModel
from .heldout import evaluate_precision
from .schedule import adam, cosine_lr, flush_denormals, progress
from .targets import TargetBatch, sample_targets
from .unsupervised import FKLoss, check_distance_scale

__all__ = ["CEMSSLConfig", "CEMSSLTrainer", "IterationStats", "FK_LOSS_TARGETS"]

#: where the optional FK-loss term asks the model to reach (:attr:`CEMSSLConfig.fk_loss_targets`)
FK_LOSS_TARGETS = ("desired", "reached")


@dataclass
class CEMSSLConfig:
    """Hyperparameters of CEMSSL (defaults: the CEMSSL paper's Table I, except the learning-rate decay).

    Attributes:
        iterations: T, maximum number of sampling / training iterations (0: none; the training
            pipeline then skips the CEMSSL phase).
        epochs: E, passes over each iteration's sampled data.
        samples_per_iteration: samples drawn per member per iteration (|D| / M).
        inference_batch: M_R, batch size of the sampling (inference) phase.
        training_batch: M_T, batch size of a training step (per member).
        lr: initial Adam learning rate.
        lr_final: learning rate at the last iteration (cosine decay over the iterations, or over
            ``max_seconds`` when that budget runs out first); = lr for a constant rate.
        target_set_size: size of the unlabeled target set U; 0 draws fresh targets every iteration.
        projected_targets: train on ``IM(p', z) + P (q - IM(p', z))`` with P the projector onto the
            Jacobian's row space at q, instead of q itself (see :meth:`CEMSSLTrainer._project_targets`);
            False trains on q exactly as the CEMSSL paper's Algorithm 1.
        keep_best: when the run ends, restore the weights of the best held-out evaluation (the
            error can creep up again late in a run); the starting weights (pretrained, warm-started
            or fine-tuned from) are evaluated first and are a candidate too; needs ``eval_every`` > 0.
        exploration_noise: std of Gaussian noise added to the inferred joints (fraction of each
            joint's learning range) in the first iteration, decaying linearly to 0 at
            ``exploration_fraction`` of the budget used (iterations, or ``max_seconds`` when it runs
            out first).  A freshly initialized model maps every target
            near one configuration; exploring around its outputs (goal babbling) lets the reached
            set grow to the whole workspace.  Use 0 for fine-tuning a pretrained model.
        exploration_fraction: fraction of the iterations with exploration.
        fk_loss_weight: weight of the optional unsupervised FK-loss term (Stephan et al.) on sampled targets.
        fk_position_loss: ``"squared"``, ``"distance"`` or ``"gauss-newton"`` form of that term (see :class:`FKLoss`).
        fk_distance_scale: ``distance_scale`` of that term (see :class:`FKLoss`; m, 0: none).
        fk_loss_targets: where that term asks the model to reach: ``"desired"`` (the sampled targets,
            a second network pass per training step) or ``"reached"`` (the reached targets the MSE
            term trains on, sharing its network pass: about half the network cost of a step).
            Reached targets lie where the model already goes: a model that systematically misses
            some desired targets is never pulled towards them (how the two compared on the UR3
            fine-tunes: docs/lab-notes.md).
        lr_warmup: iterations over which the learning rate ramps up linearly from ``lr / lr_warmup``
            to the cosine schedule (0: none).  A fresh Adam's first steps move every weight by about
            the rate; ramping up keeps them from tearing a pretrained model apart at a high rate.
        weight_decay: decoupled weight decay of the optimizer (AdamW; 0: plain Adam).  Pulls the
            weights towards zero during training, e.g. to smooth a pretrained generator whose large
            weights fold its map.
        eval_every: evaluate precision every this many iterations (0: never).
        eval_targets: held-out targets for those evaluations.
        convergence_window: stop when the best evaluated mean error improved by less than
            ``convergence_tolerance`` (relative) over this many evaluations (0 disables).
        convergence_tolerance: relative improvement threshold.
        max_seconds: stop after this much wall time (0: no limit).
        seed: RNG seed of targets, latents and shuffling.
        adam_eps: Adam's epsilon (see :func:`~.schedule.adam`).
        bf16_fraction: part of the run (by iterations or ``max_seconds``, as the learning-rate
            schedule) whose training phase runs the networks' hidden-to-hidden products in bfloat16
            (see :func:`~cemssl_ik.models.networks.hidden_precision`; 0: never).  The sampling
            phase, the evaluations and the rest of the run stay in full precision.
    """

    iterations: int = 200
    epochs: int = 10
    samples_per_iteration: int = 4096
    inference_batch: int = 512
    training_batch: int = 128
    lr: float = 1.5e-3
    lr_final: float = 1.5e-3
    target_set_size: int = 0
    projected_targets: bool = True
    keep_best: bool = True
    exploration_noise: float = 0.25
    exploration_fraction: float = 0.5
    fk_loss_weight: float = 0.0
    fk_position_loss: str = "squared"
    fk_distance_scale: float = 0.0
    fk_loss_targets: str = "desired"
    lr_warmup: int = 0
    weight_decay: float = 0.0
    eval_every: int = 10
    eval_targets: int = 1000
    convergence_window: int = 0
    convergence_tolerance: float = 0.01
    max_seconds: float = 0.0
    seed: int = 0
    adam_eps: float = 1e-8
    bf16_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not self.adam_eps > 0:
            raise ValueError(f"adam_eps must be > 0, got {self.adam_eps}")
        if not 0.0 <= self.bf16_fraction <= 1.0:
            raise ValueError(f"bf16_fraction must be in [0, 1], got {self.bf16_fraction}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        for name in ("epochs", "samples_per_iteration", "inference_batch", "training_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.lr_final > 0):
            raise ValueError("learning rates must be > 0")
        if self.exploration_noise < 0 or not 0 <= self.exploration_fraction <= 1:
            raise ValueError("exploration_noise must be >= 0 and exploration_fraction in [0, 1]")
        if self.fk_loss_weight < 0 or self.max_seconds < 0 or self.eval_every < 0 or self.weight_decay < 0 or self.lr_warmup < 0:
            raise ValueError("fk_loss_weight, weight_decay, lr_warmup, max_seconds and eval_every must be >= 0")
        if self.fk_position_loss not in FKLoss.POSITION_LOSSES:
            raise ValueError(f"fk_position_loss must be one of {FKLoss.POSITION_LOSSES}, got {self.fk_position_loss!r}")
        check_distance_scale(self.fk_position_loss, self.fk_distance_scale, "fk_distance_scale")
        if self.fk_loss_targets not in FK_LOSS_TARGETS:
            raise ValueError(f"fk_loss_targets must be one of {FK_LOSS_TARGETS}, got {self.fk_loss_targets!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CEMSSLConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown CEMSSL config key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class IterationStats:
    """What one iteration did. Errors in metres, times in seconds."""

    iteration: int
    sampled_error_mean: float  # distance between desired p and reached p' of this iteration's samples
    train_loss: float
    lr: float
    valid_fraction: float
    sampling_seconds: float
    forward_seconds: float
    training_seconds: float
    eval_error_mean: float | None = None
    eval_error_median: float | None = None
    extra: dict = field(default_factory=dict)


class CEMSSLTrainer:
    """Runs Algorithm 1 on a model with a forward model.

    Args:
        model: any :class:`IKGenerator` (fresh for CEMSSL, pretrained for fine-tuning).
        chain: the kinematic chain (targets, limits, evaluation, optional FK loss).
        config: hyperparameters.
        forward_model: the FM; default exact FK of ``chain``.
    """

    def __init__(self, model: IKGenerator, chain: KinematicChain, config: CEMSSLConfig, forward_model: ForwardModel | None = None) -> None:
        self.model = model
        self.chain = chain
        self.config = config
        self.forward_model = forward_model or AnalyticForwardModel(chain)
        self.params = list(model.generator_parameters())
        self.optimizer = adam(self.params, config.lr, weight_decay=config.weight_decay, eps=config.adam_eps)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.iteration = 0
        self.history: list[dict] = []
        self._target_set: TargetBatch | None = None
        if config.target_set_size:
            self._target_set = sample_targets(chain, config.target_set_size, self.generator)
        self._fk_loss = FKLoss(chain, position_loss=config.fk_position_loss, distance_scale=config.fk_distance_scale) if config.fk_loss_weight > 0 else None
        self._eval_targets: TargetBatch | None = None
        self._started: float | None = None
        self.best_error = math.inf
        self.best_iteration = 0
        #: held-out mean error of the starting weights (evaluated when ``keep_best``), metres
        self.initial_error: float | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self._learning_lower = torch.as_tensor(chain.learning_limits()[0])

    # ------------------------------------------------------------------ pieces of one iteration
    def _draw_targets(self, n: int) -> TargetBatch:
        if self._target_set is None:
            return sample_targets(self.chain, n, self.generator)
        idx = torch.randint(len(self._target_set), (n,), generator=self.generator)
        return self._target_set.index(idx)

    def current_progress(self) -> float:
        """Fraction of the run done (iterations, or the time budget when it runs out first)."""
        c = self.config
        return progress(self.iteration, c.iterations, self._started, c.max_seconds)

    def current_lr(self) -> float:
        c = self.config
        lr = cosine_lr(c.lr, c.lr_final, self.current_progress())
        if self.iteration < c.lr_warmup:
            lr *= (self.iteration + 1) / c.lr_warmup
        return lr

    def current_exploration(self) -> float:
        """Exploration std: linear decay to 0 at ``exploration_fraction`` of the budget actually
        used, by iterations or by ``max_seconds`` when the time budget runs out first (a
        time-limited run of many nominal iterations still ends without noise)."""
        c = self.config
        if c.exploration_noise == 0 or c.exploration_fraction <= 0 or c.iterations == 0:
            return 0.0
        done = self.iteration / c.iterations
        if c.max_seconds and self._started is not None:
            done = max(done, (time.perf_counter() - self._started) / c.max_seconds)
        return c.exploration_noise * max(0.0, 1.0 - done / c.exploration_fraction)

    def _wrap_measured(self, q: torch.Tensor) -> torch.Tensor:
        """Measured joints into the learning range (revolute joints: one period), so they are encodable."""
        return wrap_into_range(q, self._learning_lower, torch.as_tensor(self.chain.periodic))

    @torch.no_grad()
    def sample_phase(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Steps 1-2: infer q for targets from U with random z, evaluate FM vectorized."""
        m, c = self.model, self.config
        M, N = m.num_members, c.samples_per_iteration
        t0 = time.perf_counter()
        targets = self._draw_targets(M * N)
        cond = m.encode_targets(targets.position, targets.rotation if m.config.target == "pose" else None).reshape(M, N, -1)
        z = torch.randn(M, N, m.noise_dim, generator=self.generator, dtype=torch.float64).to(m.device, m.dtype)
        if m.num_classes:  # branch classes drawn uniformly: every branch is asked for
            z = m.with_classes(z, torch.randint(m.num_classes, (M, N), generator=self.generator))
        m.eval()
        outs = [m.generate(cond[:, s : s + c.inference_batch], z[:, s : s + c.inference_batch]) for s in range(0, N, c.inference_batch)]
        m.train()
        q = m.decode(torch.cat(outs, dim=1), targets.position.reshape(M, N, 3)).double().cpu()  # (M, N, dof)
        sigma = self.current_exploration()
        if sigma > 0:
            lo, hi = (torch.as_tensor(v) for v in self.chain.learning_limits())
            q = q + sigma * (hi - lo) * torch.randn(q.shape, generator=self.generator, dtype=q.dtype)
            q = torch.maximum(torch.minimum(self._wrap_measured(q), hi), lo)
        t1 = time.perf_counter()
        res = self.forward_model.evaluate(q.reshape(M * N, -1))
        t2 = time.perf_counter()
        valid = res.valid.reshape(M, N)
        err = (res.position - targets.position).norm(dim=-1).reshape(M, N)
        # samples the forward model failed on get zero weight in training; their pose and joints
        # (possibly NaN) are replaced by the desired target and the commanded joints, since a NaN
        # times a zero weight would still be NaN
        ok = res.valid.reshape(-1, 1)
        position = torch.where(ok, res.position, targets.position)
        rotation = torch.where(ok[..., None], res.rotation, targets.rotation)
        q_meas = self._wrap_measured(torch.where(ok, res.q, q.reshape(M * N, -1)).reshape(M, N, -1).double())
        z = m.relabel(z, q_meas)  # the branch actually reached (a no-op without branch classes)
        cond_reached = m.encode_targets(position, rotation if m.config.target == "pose" else None).reshape(M, N, -1)
        reached = position.reshape(M, N, 3)
        if c.projected_targets:
            q_meas = self._project_targets(cond_reached, z, q_meas, reached)
        data = {
            "cond": cond_reached,
            "z": z,
            "target": m.normalize_joints(q_meas, reached).to(m.device, m.dtype),
            "valid": valid.to(m.device),
            "reached_position": reached.to(m.device, m.dtype),
            "desired_position": targets.position.reshape(M, N, 3),
            "desired_rotation": targets.rotation.reshape(M, N, 3, 3),
        }
        info = {
            "sampled_error_mean": float(err[valid].mean()) if valid.any() else math.nan,
            "valid_fraction": float(valid.double().mean()),
            "exploration": sigma,
            "sampling_seconds": t1 - t0,
            "forward_seconds": t2 - t1,
        }
        return data, info

    @torch.no_grad()
    def _project_targets(self, cond: torch.Tensor, z: torch.Tensor, q: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Keep the task-relevant part of each training target, the model's own choice for the rest.

        target = q_hat + P (q - q_hat), q_hat = IM(p', z) (current model), P = J^+ J at q.

        Plain CEMSSL targets q correct the model's task-space error exactly, but in redundant
        directions (self-motion that does not move the tool) they also copy the model's own fitting
        noise back into the next target, where nothing ever corrects it: over iterations that noise
        accumulates, the map roughens and precision stalls.  Projecting removes that drift; the
        Jacobian only selects directions (the nominal model suffices for a real-robot forward model).
        """
        m, c = self.model, self.config
        M, N, dof = q.shape
        q_hat = torch.cat(
            [
                m.decode(m.generate(cond[:, s : s + c.inference_batch], z[:, s : s + c.inference_batch]), position[:, s : s + c.inference_batch])
                for s in range(0, N, c.inference_batch)
            ],
            dim=1,
        ).double().cpu()
        diff = q - q_hat
        per = torch.as_tensor(self.chain.periodic)
        diff = torch.where(per, wrap_to_pi(diff), diff)
        rows = 6 if m.config.target == "pose" else 3
        J = self.chain.jacobian(q.reshape(M * N, dof))[:, :rows]  # (MN, rows, dof)
        proj = damped_least_squares(J, (J @ diff.reshape(M * N, dof, 1))[..., 0], 1e-10).reshape(M, N, dof)
        # the projection is a linearization: where the model is far from q (another branch, early
        # exploration) keep the exact observed q
        near = diff.abs().amax(-1, keepdim=True) < 0.3
        return torch.where(near, self._wrap_measured(q_hat + proj), q)

    def train_phase(self, data: dict[str, torch.Tensor]) -> float:
        """Step 3: E epochs of MSE on (p', z) -> q, every member on its own samples."""
        m, c = self.model, self.config
        lr = self.current_lr()
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        with hidden_precision(m, torch.bfloat16 if self.current_progress() < c.bf16_fraction else None):
            return self._train_epochs(data)

    def _train_epochs(self, data: dict[str, torch.Tensor]) -> float:
        m, c = self.model, self.config
        M, N = data["z"].shape[:2]
        # invalid samples get zero weight instead of being removed, keeping (M, N) rectangular
        weight = data["valid"].to(m.dtype)
        total, steps = 0.0, 0
        losses = []
        for _ in range(c.epochs):
            perm = torch.argsort(torch.rand(M, N, generator=self.generator), dim=1).to(m.device)
            for s in range(0, N, c.training_batch):
                idx = perm[:, s : s + c.training_batch]  # (M, b)
                cond = torch.gather(data["cond"], 1, idx[..., None].expand(-1, -1, data["cond"].shape[-1]))
                z = torch.gather(data["z"], 1, idx[..., None].expand(-1, -1, data["z"].shape[-1]))
                tgt = torch.gather(data["target"], 1, idx[..., None].expand(-1, -1, data["target"].shape[-1]))
                w = torch.gather(weight, 1, idx)
                pred = m.generate(cond, z)
                loss = (((pred - tgt) ** 2).mean(-1) * w).sum() / w.sum().clamp_min(1.0) * M
                if self._fk_loss is not None and m.config.target == "position":
                    if c.fk_loss_targets == "reached":
                        # the MSE's own pass: (p', z) -> q_pred should reach p' itself; only what
                        # the forward model did reach counts
                        dp = torch.gather(data["reached_position"], 1, idx[..., None].expand(-1, -1, 3))
                        fk = self._fk_loss(m.decode(pred, dp).reshape(-1, m.codec.dof), dp.reshape(-1, 3))
                        fk = (fk * w.reshape(-1)).sum() / w.sum().clamp_min(1.0)
                    else:
                        dp = torch.gather(data["desired_position"].to(m.device, m.dtype), 1, idx[..., None].expand(-1, -1, 3))
                        q_pred = m.decode(m.generate(m.encode_targets(dp.reshape(-1, 3)).reshape(M, -1, m.cond_dim), z), dp)
                        fk = self._fk_loss(q_pred.reshape(-1, m.codec.dof), dp.reshape(-1, 3)).mean()
                    loss = loss + c.fk_loss_weight * fk
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                losses.append(loss.detach())
                steps += 1
        if losses:
            total = float(torch.stack(losses).mean())
        return total

    # ------------------------------------------------------------------ the loop
    def evaluate(self) -> tuple[float, float]:
        if self._eval_targets is None:
            self._eval_targets = sample_targets(self.chain, self.config.eval_targets, torch.Generator().manual_seed(self.config.seed + VALIDATION_SEED_OFFSET))
        rep = evaluate_precision(self.model, self.chain, targets=self._eval_targets, seed=self.config.seed + VALIDATION_SAMPLING_SEED_OFFSET)
        return float(rep.position_error.mean()), float(rep.position_error.median())

    def step(self) -> IterationStats:
        """One full iteration (sampling, forward model, training)."""
        data, info = self.sample_phase()
        t0 = time.perf_counter()
        loss = self.train_phase(data)
        stats = IterationStats(
            iteration=self.iteration + 1,
            sampled_error_mean=info["sampled_error_mean"],
            train_loss=loss,
            lr=self.current_lr(),
            valid_fraction=info["valid_fraction"],
            sampling_seconds=info["sampling_seconds"],
            forward_seconds=info["forward_seconds"],
            training_seconds=time.perf_counter() - t0,
        )
        self.iteration += 1
        c = self.config
        if c.eval_every and (self.iteration % c.eval_every == 0 or self.iteration == c.iterations):
            stats.eval_error_mean, stats.eval_error_median = self.evaluate()
            if c.keep_best and stats.eval_error_mean < self.best_error:
                self.best_error, self.best_iteration = stats.eval_error_mean, self.iteration
                self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.history.append(dataclasses.asdict(stats))
        return stats

    def converged(self) -> bool:
        c = self.config
        if not c.convergence_window:
            return False
        evals = [h["eval_error_mean"] for h in self.history if h["eval_error_mean"] is not None]
        if len(evals) <= c.convergence_window:
            return False
        best_before = min(evals[: -c.convergence_window])
        best_recent = min(evals[-c.convergence_window :])
        return best_recent > best_before * (1 - c.convergence_tolerance)

    def run(self, callback: Callable[[IterationStats], None] | None = None) -> str:
        """Iterate until T iterations, convergence or the time budget; returns the stop reason.

        Subnormal floats are flushed to zero meanwhile (:func:`~.schedule.flush_denormals`)."""
        with flush_denormals():
            return self._run(callback)

    def _run(self, callback: Callable[[IterationStats], None] | None) -> str:
        start = self._started = time.perf_counter()
        reason = "iterations"
        c = self.config
        if c.keep_best and c.eval_every and self.iteration == 0 and self._best_state is None:
            # the starting weights are a candidate too: CEMSSL can make a pretrained or warm-started
            # model worse before it makes it better, and a short run may end before it recovers
            self.initial_error = self.best_error = self.evaluate()[0]
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        while self.iteration < self.config.iterations:
            stats = self.step()
            if callback is not None:
                callback(stats)
            if self.converged():
                reason = "converged"
                break
            if self.config.max_seconds and time.perf_counter() - start > self.config.max_seconds:
                reason = "time budget"
                break
        self.restore_best()
        return reason

    def restore_best(self) -> bool:
        """Load the best evaluated weights (if ``keep_best`` and the last evaluation was worse)."""
        evals = [h["eval_error_mean"] for h in self.history if h["eval_error_mean"] is not None]
        if not self.config.keep_best or self._best_state is None or not evals or evals[-1] <= self.best_error:
            return False
        self.model.load_state_dict(self._best_state)
        return True

    # ------------------------------------------------------------------ resume support
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Optimizer moments and RNG state as tensors (saved next to the weights for resuming)."""
        out: dict[str, torch.Tensor] = {"rng": self.generator.get_state()}
        for i, p in enumerate(self.params):
            st = self.optimizer.state.get(p)
            if st:
                out[f"adam.{i}.exp_avg"] = st["exp_avg"].detach().cpu().contiguous()
                out[f"adam.{i}.exp_avg_sq"] = st["exp_avg_sq"].detach().cpu().contiguous()
                out[f"adam.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float64).reshape(1).cpu()
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], iteration: int, history: list[dict]) -> None:
        self.generator.set_state(tensors["rng"])
        fused = bool(self.optimizer.param_groups[0].get("fused"))
        for i, p in enumerate(self.params):
            if f"adam.{i}.exp_avg" in tensors:
                self.optimizer.state[p] = {
                    # copies: the optimizer updates its moments in place, and the given tensors may be
                    # another trainer's live state (``state_tensors`` does not copy CPU tensors)
                    "exp_avg": tensors[f"adam.{i}.exp_avg"].to(p, copy=True),
                    "exp_avg_sq": tensors[f"adam.{i}.exp_avg_sq"].to(p, copy=True),
                    # fused Adam keeps its step counter on the parameter's device
                    "step": torch.tensor(float(tensors[f"adam.{i}.step"].item()), device=p.device if fused else "cpu"),
                }
        self.iteration = iteration
        self.history = list(history)
