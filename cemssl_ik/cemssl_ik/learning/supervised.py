"""Supervised pretraining of the CDGM baselines on FK-sampled (q, p) pairs (the CEMSSL paper, §IV, Table II).

- CVAE: reconstruction MSE of the decoder output + ``kl_weight`` * KL(q(z | q, p) || N(0, I)).
- CGAN: non-saturating GAN losses; the discriminator sees (q, p) pairs.
- CINN: maximum likelihood ("LHL"): 0.5 ||z||^2 - log|det J| of the forward pass q -> z given p.
- regression (direct / "EMSSL without the loop"): MSE of IM(p) on q, for the EMSSL table.

Each step draws a fresh batch from the FK sampler (a functionally infinite dataset, as Stephan et al.).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..kinematics.chain import KinematicChain
from ..models.generators import CGAN, CINN, CVAE, IKGenerator
from .heldout import Evaluator
from .loop import StepTrainer
from .schedule import adam
from .targets import sample_targets

__all__ = ["SupervisedConfig", "SupervisedTrainer"]


@dataclass
class SupervisedConfig:
    """Hyperparameters of supervised pretraining.

    Attributes:
        steps: optimizer steps (each on a fresh FK-sampled batch).
        batch_size: samples per step and member.
        lr, lr_final: Adam learning rate with cosine decay.
        dataset_size: if > 0, draw batches from a fixed dataset of this size instead of fresh samples.
        noise: std of Gaussian noise added to the normalized joints for the CINN (stabilizes the density).
        eval_every: evaluate precision every this many steps (0: never).
        max_seconds: wall-time budget (0: none).
        seed: RNG seed.
    """

    steps: int = 20000
    batch_size: int = 256
    lr: float = 1e-3
    lr_final: float = 1e-5
    dataset_size: int = 0
    noise: float = 1e-3
    eval_every: int = 2000
    max_seconds: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class SupervisedTrainer(StepTrainer):
    """Pretrains a CVAE / CGAN / CINN (or an MLP by plain regression) on FK samples."""

    def __init__(self, model: IKGenerator, chain: KinematicChain, config: SupervisedConfig, evaluator: Evaluator | None = None) -> None:
        self.model, self.chain, self.config = model, chain, config
        self.evaluator = evaluator  # held-out error of a model; None: the default on this chain and seed
        self.generator = torch.Generator().manual_seed(config.seed)
        if isinstance(model, CGAN):
            self.opt_g = adam(model.generator_net.parameters(), config.lr, betas=(0.5, 0.999))
            self.opt_d = adam(model.discriminator.parameters(), config.lr, betas=(0.5, 0.999))
            self.optimizers = [self.opt_g, self.opt_d]
        else:
            self.opt = adam(model.parameters(), config.lr)
            self.optimizers = [self.opt]
        self.dataset = sample_targets(chain, config.dataset_size, self.generator) if config.dataset_size else None
        self.step_count = 0
        self._started: float | None = None
        self.history: list[dict] = []

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m, c = self.model, self.config
        M, B = m.num_members, c.batch_size
        if self.dataset is None:
            t = sample_targets(self.chain, M * B, self.generator)
        else:
            t = self.dataset.index(torch.randint(len(self.dataset), (M * B,), generator=self.generator))
        cond = m.encode_targets(t.position, t.rotation if m.config.target == "pose" else None).reshape(M, B, -1)
        target = m.normalize_joints(t.q, t.position).to(m.device, m.dtype).reshape(M, B, -1)
        return cond, target, t.q.reshape(M, B, -1)

    def step(self) -> dict[str, float]:
        m = self.model
        lr = self.current_lr()
        for opt in self.optimizers:
            for g in opt.param_groups:
                g["lr"] = lr
        cond, target, q_true = self._batch()
        M, B = target.shape[:2]
        z_shape = (M, B, m.latent_dim)
        if isinstance(m, CVAE):
            mu, logvar = m.encode(cond, target)
            z = mu + torch.randn(z_shape, generator=self.generator).to(mu) * torch.exp(0.5 * logvar)
            recon = F.mse_loss(m.generate(cond, z), target, reduction="none").mean(-1).mean()
            kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)).mean()
            loss = recon + m.config.kl_weight * kl
            self._update(self.opt, loss * M)
            return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}
        if isinstance(m, CGAN):
            z = torch.randn(z_shape, generator=self.generator).to(target)
            fake = m.generate(cond, z)
            d_real, d_fake = m.discriminate(cond, target), m.discriminate(cond, fake.detach())
            loss_d = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            self._update(self.opt_d, loss_d * M)
            d_gen = m.discriminate(cond, fake)
            loss_g = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
            self._update(self.opt_g, loss_g * M)
            return {"loss": loss_g.item(), "loss_d": loss_d.item()}
        if isinstance(m, CINN):
            noisy = target + self.config.noise * torch.randn(target.shape, generator=self.generator).to(target)
            z, log_jac = m.forward_density(cond, noisy)
            loss = (0.5 * (z**2).sum(-1) - log_jac).mean() / m.latent_dim
            self._update(self.opt, loss * M, clip=10.0)
            return {"loss": loss.item()}
        # plain regression: the latent (if any) is ignored noise, as in direct supervised IK learning;
        # a branch class in the latent is the class of the sampled joints, so each class learns its
        # own branch (a well-posed regression for a non-redundant arm)
        z = torch.randn((M, B, m.noise_dim), generator=self.generator).to(target)
        if m.num_classes:
            z = m.with_classes(z, m.branch_labeler(q_true))
        loss = F.mse_loss(m.generate(cond, z), target)
        self._update(self.opt, loss * M)
        return {"loss": loss.item()}

    def _update(self, opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float | None = None) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
        opt.step()
