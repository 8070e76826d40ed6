"""Conditional inverse models sharing one contract: ``IM(target, z) -> q``.

Every model holds M members (an ensemble; CEMSSL paper, Qu et al., §III-B) and exposes

- :meth:`IKGenerator.generate` ``(cond (M, B, C), z (M, B, Z)) -> (M, B, out)``: the differentiable
  inverse model in the codec's normalized output space (what CEMSSL trains with MSE);
- :meth:`IKGenerator.sample`: targets (B, 3) [+ rotations] -> joint samples (B, K, dof), spreading
  the K samples per target over the members;
- :meth:`IKGenerator.generator_parameters`: the weights of the inverse pass (decoder, generator,
  reverse INN), which CEMSSL fine-tunes in the unified framework (CEMSSL paper §III-C).

Models: :class:`MLPGenerator` (CEMSSL; EMSSL with ``latent_dim=0``; also the unsupervised FK-loss
model), :class:`CVAE`, :class:`CGAN`, :class:`CINN` (FrEIA conditional coupling blocks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from ..kinematics.branches import BranchLabeler, branch_labeler
from .config import MAX_CINN_BLOCKS, MAX_LAYERS, MAX_MEMBERS, MAX_WIDTH, METHODS, ModelConfig
from .encoding import JointCodec, TargetEncoder
from .networks import ACTIVATIONS, BatchedMLP

__all__ = ["METHODS", "MAX_MEMBERS", "MAX_WIDTH", "MAX_LAYERS", "MAX_CINN_BLOCKS", "ModelConfig", "IKGenerator", "MLPGenerator", "CVAE", "CGAN", "CINN", "build_generator", "select_members", "SampleResult"]


@dataclass(frozen=True)
class SampleResult:
    """Joint samples for B targets.

    Attributes:
        q: (B, K, dof) joint values within the learning limits.
        member: (B, K) ensemble member that produced each sample.
        z: (B, K, Z) latents used.
    """

    q: torch.Tensor
    member: torch.Tensor
    z: torch.Tensor


class IKGenerator(nn.Module):
    """Base class: condition encoding, joint codec and member bookkeeping shared by all models."""

    def __init__(self, config: ModelConfig, target_encoder: TargetEncoder, codec: JointCodec) -> None:
        super().__init__()
        if target_encoder.kind != config.target:
            raise ValueError(f"target encoder kind {target_encoder.kind!r} does not match config target {config.target!r}")
        if target_encoder.symmetric != config.base_symmetry:
            raise ValueError(f"config base_symmetry={config.base_symmetry} needs a target encoder {'with' if config.base_symmetry else 'without'} a symmetry axis")
        if config.base_symmetry and not bool(codec.periodic[0]):
            raise ValueError("base_symmetry needs a revolute first joint")
        self.config = config
        self.target_encoder = target_encoder
        self.codec = codec
        #: configuration-class labeler whose one-hot class leads the latent (None: continuous latent only)
        self.branch_labeler: BranchLabeler | None = branch_labeler(config.branches) if config.branches else None
        self.num_classes = self.branch_labeler.num_classes if self.branch_labeler else 0
        if self.branch_labeler is not None:
            self.branch_labeler.check(codec.dof)
        #: width of the Gaussian part of the latent
        self.noise_dim = config.latent_dim
        #: full latent width: one-hot class (num_classes) + Gaussian noise (noise_dim)
        self.latent_dim = self.num_classes + config.latent_dim
        self.num_members = config.members
        self.cond_dim = target_encoder.dim
        self.out_dim = codec.out_dim
        #: optional residual stage (``ModelConfig.residual_stage``): sees the first stage's input and
        #: output, adds ``residual_scale`` times its own output; zero at the start
        self.residual_net: BatchedMLP | None = None
        if config.residual_stage:
            self.residual_net = BatchedMLP(config.members, self.cond_dim + self.latent_dim + self.out_dim, self.out_dim, config.residual_stage, config.activation)
            last = self.residual_net.output_layer()
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    # -- the contract ------------------------------------------------------------------
    def first_stage(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(M, B, C), (M, B, Z) -> (M, B, out) normalized outputs of the model's own network."""
        raise NotImplementedError

    def first_stage_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the model's own inverse network."""
        raise NotImplementedError

    def generate(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(M, B, C), (M, B, Z) -> (M, B, out) normalized outputs (differentiable): the first stage,
        plus the residual stage's correction when the model has one."""
        out = self.first_stage(cond, z)
        if self.residual_net is None:
            return out
        # the first stage's output, as 4 * out - 2, is part of the residual network's input ([-2, 2] for
        # sigmoid outputs, [-6, 2] for biternions); trained stages depend on this exact input, so it
        # stays as it is (test_shipped_models checks the shipped stage's part of the outputs)
        x = torch.cat([cond, z], dim=-1) if self.latent_dim else cond
        correction = self.residual_net(torch.cat([x, 4.0 * out - 2.0], dim=-1))
        return out + self.config.residual_scale * correction

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the inverse pass (fine-tuned by CEMSSL): the first stage's, then the residual stage's."""
        yield from self.first_stage_parameters()
        yield from self.residual_parameters()

    def residual_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the residual stage (none without one)."""
        return iter(()) if self.residual_net is None else self.residual_net.parameters()

    # -- helpers -------------------------------------------------------------------------
    def _reference_parameter(self) -> nn.Parameter:
        # walking the module tree (``next(self.parameters())``) costs ~20 us, several times per
        # small request; ``.to()`` converts parameters in place, so one parameter object stays
        # representative (a deep copy maps it to the copy's own parameter)
        p = self.__dict__.get("_ref_param")
        if p is None:
            p = self.__dict__["_ref_param"] = next(self.parameters())
        return p

    @property
    def dtype(self) -> torch.dtype:
        return self._reference_parameter().dtype

    @property
    def device(self) -> torch.device:
        return self._reference_parameter().device

    def encode_targets(self, position: torch.Tensor, rotation: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3) [+ (B, 3, 3)] -> (B, C) condition features in the model dtype."""
        return self.target_encoder.encode(position.to(self.device, self.dtype), None if rotation is None else rotation.to(self.device, self.dtype))

    def sample_latent(self, *shape: int, generator: torch.Generator | None = None, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (*shape, latent_dim): [one-hot class, N(0, I) noise]; classes uniform unless given."""
        z = torch.randn(*shape, self.noise_dim, generator=generator, dtype=self.dtype, device=self.device)
        if self.num_classes and classes is None:
            classes = torch.randint(self.num_classes, shape, generator=generator, device=self.device)
        return self.with_classes(z, classes) if self.num_classes else z

    def with_classes(self, noise: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Prepend the one-hot ``classes`` (*batch,) to Gaussian ``noise`` (*batch, noise_dim)."""
        onehot = torch.nn.functional.one_hot(classes.to(noise.device).long(), self.num_classes).to(noise.dtype)
        return torch.cat([onehot, noise], dim=-1)

    def relabel(self, z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Latents with their class replaced by the class of the joints ``q`` actually reached
        (CEMSSL trains on what was reached: the target, and the branch, of q); identity without classes."""
        if not self.num_classes:
            return z
        return self.with_classes(z[..., self.num_classes :], self.branch_labeler(q.detach().double().cpu()).to(z.device))

    def slot_classes(self, num_samples: int) -> torch.Tensor:
        """(K,) classes of the K samples per target when none are given: every class once in each run of
        C consecutive slots, shifted by one per run so members (slot k -> member k mod M) see all classes."""
        k = torch.arange(num_samples, device=self.device)
        return (k + k // max(self.num_classes, 1)) % max(self.num_classes, 1)

    def decode(self, normalized: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """Normalized outputs (..., out) -> joints (..., dof) for targets ``position`` (..., 3).

        The targets are needed by models with ``base_symmetry`` (their first joint is relative to
        the target's azimuth) and ignored by the others.
        """
        q = self.codec.decode(normalized)
        if not self.config.base_symmetry:
            return q
        return self._shift_first_joint(q, position, +1.0)

    def normalize_joints(self, q: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """Joints (..., dof) reaching targets ``position`` (..., 3) -> the network's training target (..., out)."""
        if self.config.base_symmetry:
            q = self._shift_first_joint(q, position, -1.0)
        return self.codec.normalize(q)

    def _shift_first_joint(self, q: torch.Tensor, position: torch.Tensor | None, sign: float) -> torch.Tensor:
        if position is None:
            raise ValueError("this model has base_symmetry: decoding / normalizing joints needs the target positions")
        phi = self.target_encoder.azimuth(position.to(q.device, torch.float64)).to(q.dtype)
        if phi.shape != q.shape[:-1]:
            raise ValueError(f"target positions {tuple(position.shape)} do not match joints {tuple(q.shape)}")
        lo = float(self.codec.lower[0])
        first = lo + torch.remainder(q[..., 0] + sign * phi - lo, 2 * math.pi)  # back into the learning period
        return torch.cat([first[..., None], q[..., 1:]], dim=-1)

    @torch.no_grad()
    def sample(
        self,
        position: torch.Tensor,
        rotation: torch.Tensor | None = None,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
        z: torch.Tensor | None = None,
        classes: torch.Tensor | None = None,
        member_offset: torch.Tensor | None = None,
    ) -> SampleResult:
        """K = ``num_samples`` joint samples per target; sample k of target b comes from member
        (k + member_offset[b]) mod M (offset 0 unless given).

        Args:
            position: (B, 3) target positions (metres) in the chain base frame.
            rotation: (B, 3, 3) target rotations for pose models, or (B, K, 3, 3): one per sample.
            num_samples: K.
            generator: RNG for the latents.
            z: optional (B, K, Z) latents instead of random ones.
            classes: for models with branch classes: (B, K) or (K,) class of each sample instead of
                :meth:`slot_classes` (every class in turn); ignored when ``z`` is given.
            member_offset: (B,) integers: the member of each target's first sample.  With fewer
                samples than members (K = 1 in particular) the default sends every target to the
                first members only; offsets spread over the members (``arange(B) % M``, as
                :func:`~cemssl_ik.learning.heldout.evaluate_precision` uses) make the samples
                of a batch those of the ensemble as a whole.
        """
        if position.ndim != 2 or position.shape[-1] != 3:
            raise ValueError(f"position must be (B, 3), got {tuple(position.shape)}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        B, K, M = position.shape[0], num_samples, self.num_members
        if rotation is not None and rotation.ndim == 4:
            # one orientation per sample: (B, K, 3, 3)
            if rotation.shape[:2] != (B, K):
                raise ValueError(f"per-sample rotations must be (B={B}, K={K}, 3, 3), got {tuple(rotation.shape)}")
            cond = self.encode_targets(position[:, None].expand(B, K, 3).reshape(-1, 3), rotation.reshape(-1, 3, 3)).reshape(B, K, self.cond_dim)
        else:
            cond = self.encode_targets(position, rotation)[:, None].expand(B, K, self.cond_dim)  # (B, K, C)
        if z is None:
            if self.num_classes:
                classes = self.slot_classes(K) if classes is None else torch.as_tensor(classes, device=self.device)
                z = self.sample_latent(B, K, generator=generator, classes=classes.expand(B, K))
            else:
                z = self.sample_latent(B, K, generator=generator)
        elif z.shape != (B, K, self.latent_dim):
            raise ValueError(f"z must be (B={B}, K={K}, Z={self.latent_dim}), got {tuple(z.shape)}")
        z = z.to(self.device, self.dtype)
        per = math.ceil(K / M)
        # slot j in [0, per * M) -> member j % M, position j // M within that member's batch;
        # sample k of target b sits in slot (offset_b + k) mod (per * M)
        slots = torch.arange(K, device=self.device).expand(B, K)
        if member_offset is not None:
            member_offset = torch.as_tensor(member_offset, device=self.device).long()
            if member_offset.shape != (B,):
                raise ValueError(f"member_offset must be (B={B},), got {tuple(member_offset.shape)}")
            slots = (slots + member_offset[:, None]) % (per * M)
        direct = member_offset is None and per * M == K  # slots in order, none empty: plain reshapes

        def to_members(x: torch.Tensor) -> torch.Tensor:
            if M == 1:
                return x.reshape(1, B * K, x.shape[-1])
            if not direct:
                full = x.new_zeros(B, per * M, x.shape[-1])
                x = full.scatter(1, slots[..., None].expand(B, K, x.shape[-1]), x)
            return x.reshape(B, per, M, x.shape[-1]).permute(2, 0, 1, 3).reshape(M, B * per, x.shape[-1])

        out = self.generate(to_members(cond), to_members(z))  # (M, B*per, out)
        pos = to_members(position.to(self.device, torch.float64)[:, None].expand(B, K, 3)) if self.config.base_symmetry else None
        if M == 1:
            q = self.decode(out, pos).reshape(B, K, -1)
        else:
            q = self.decode(out, pos).reshape(M, B, per, -1).permute(1, 2, 0, 3).reshape(B, per * M, -1)
            q = q if direct else torch.gather(q, 1, slots[..., None].expand(B, K, q.shape[-1]))
        return SampleResult(q, slots % M, z)


class MLPGenerator(IKGenerator):
    """CEMSSL / EMSSL inverse model: an ensemble of MLPs on [condition, z] (CEMSSL paper, Table I)."""

    def __init__(self, config: ModelConfig, target_encoder: TargetEncoder, codec: JointCodec) -> None:
        super().__init__(config, target_encoder, codec)
        self.net = BatchedMLP(config.members, self.cond_dim + self.latent_dim, self.out_dim, config.hidden, config.activation)

    def first_stage(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.codec.activate(self.net(torch.cat([cond, z], dim=-1) if self.latent_dim else cond))

    def first_stage_parameters(self) -> Iterator[nn.Parameter]:
        return self.net.parameters()


class CVAE(IKGenerator):
    """Conditional VAE (Sohn et al.): encoder q(z | q, p), decoder p(q | z, p) = the inverse model."""

    def __init__(self, config: ModelConfig, target_encoder: TargetEncoder, codec: JointCodec) -> None:
        super().__init__(config, target_encoder, codec)
        self.decoder = BatchedMLP(config.members, self.cond_dim + self.latent_dim, self.out_dim, config.hidden, config.activation)
        self.encoder = BatchedMLP(config.members, self.cond_dim + self.out_dim, 2 * self.latent_dim, config.encoder_hidden, config.activation)

    def first_stage(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.codec.activate(self.decoder(torch.cat([cond, z], dim=-1)))

    def encode(self, cond: torch.Tensor, target_normalized: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, B, C), (M, B, out) -> mean, log-variance (M, B, Z) of q(z | q, p)."""
        h = self.encoder(torch.cat([cond, target_normalized], dim=-1))
        return h[..., : self.latent_dim], h[..., self.latent_dim :].clamp(-12.0, 8.0)

    def first_stage_parameters(self) -> Iterator[nn.Parameter]:
        return self.decoder.parameters()


class CGAN(IKGenerator):
    """Conditional GAN (Mirza & Osindero): generator G(z, p) = the inverse model, discriminator D(q, p)."""

    def __init__(self, config: ModelConfig, target_encoder: TargetEncoder, codec: JointCodec) -> None:
        super().__init__(config, target_encoder, codec)
        self.generator_net = BatchedMLP(config.members, self.cond_dim + self.latent_dim, self.out_dim, config.hidden, config.activation)
        self.discriminator = BatchedMLP(config.members, self.cond_dim + self.out_dim, 1, config.discriminator_hidden, "leaky_relu")

    def first_stage(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.codec.activate(self.generator_net(torch.cat([cond, z], dim=-1)))

    def discriminate(self, cond: torch.Tensor, normalized: torch.Tensor) -> torch.Tensor:
        """(M, B, C), (M, B, out) -> (M, B) logits of 'real'."""
        return self.discriminator(torch.cat([cond, normalized], dim=-1)).squeeze(-1)

    def first_stage_parameters(self) -> Iterator[nn.Parameter]:
        return self.generator_net.parameters()


class CINN(IKGenerator):
    """Conditional invertible network (Ardizzone et al.) built from FrEIA's affine coupling blocks.

    The forward pass maps joint values y = 2 * unit - 1 (unit: joint-limit normalized) to z given the
    target; the reverse pass (z, target) -> y is the inverse model.  Trained by maximum likelihood.
    """

    def __init__(self, config: ModelConfig, target_encoder: TargetEncoder, codec: JointCodec) -> None:
        super().__init__(config, target_encoder, codec)
        if self.latent_dim != self.out_dim:
            raise ValueError(f"cinn needs latent_dim == number of joints ({self.out_dim}), got {self.latent_dim}")
        import FrEIA.framework as Ff
        import FrEIA.modules as Fm

        width = config.coupling_hidden
        act = ACTIVATIONS[config.activation]

        def subnet(c_in: int, c_out: int) -> nn.Module:
            net = nn.Sequential(nn.Linear(c_in, width), act(), nn.Linear(width, width), act(), nn.Linear(width, c_out))
            nn.init.zeros_(net[-1].weight)  # start as the identity map: stable early training
            nn.init.zeros_(net[-1].bias)
            return net

        self.inns = nn.ModuleList()
        for _ in range(config.members):
            inn = Ff.SequenceINN(self.out_dim)
            for _ in range(config.coupling_blocks):
                inn.append(Fm.AllInOneBlock, cond=0, cond_shape=(self.cond_dim,), subnet_constructor=subnet, affine_clamping=2.0, permute_soft=True)
            self.inns.append(inn)

    def forward_density(self, cond: torch.Tensor, normalized: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, B, C), (M, B, out) -> z (M, B, Z), log|det J| (M, B)."""
        zs, lds = [], []
        for m, inn in enumerate(self.inns):
            z, ld = inn(2 * normalized[m] - 1, c=[cond[m]])
            zs.append(z)
            lds.append(ld)
        return torch.stack(zs), torch.stack(lds)

    def first_stage(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        ys = [inn(z[m], c=[cond[m]], rev=True)[0] for m, inn in enumerate(self.inns)]
        return ((torch.stack(ys) + 1) / 2).clamp(0.0, 1.0)

    def first_stage_parameters(self) -> Iterator[nn.Parameter]:
        return self.inns.parameters()


_CLASSES = {"cemssl": MLPGenerator, "emssl": MLPGenerator, "unsupervised": MLPGenerator, "cvae": CVAE, "cgan": CGAN, "cinn": CINN}


def select_members(model: IKGenerator, keep: list[int]) -> IKGenerator:
    """A copy of an ensemble (:class:`MLPGenerator`) with only the members ``keep``, in that order."""
    if type(model) is not MLPGenerator:
        raise ValueError(f"only cemssl / emssl / unsupervised ensembles have members to select, not {model.config.method!r}")
    keep = [int(k) for k in keep]
    if not keep or len(set(keep)) != len(keep) or min(keep) < 0 or max(keep) >= model.num_members:
        raise ValueError(f"keep must be distinct member indices in [0, {model.num_members}), got {keep}")
    config = ModelConfig.from_dict({**model.config.to_dict(), "members": len(keep)})
    out = build_generator(config, model.target_encoder, model.codec).to(model.device, model.dtype)
    idx = torch.as_tensor(keep, device=model.device)
    out.load_state_dict({k: v.index_select(0, idx).clone() for k, v in model.state_dict().items()})
    return out


def build_generator(config: ModelConfig, target_encoder: TargetEncoder, codec: JointCodec) -> IKGenerator:
    """Instantiate the model class of ``config.method``."""
    return _CLASSES[config.method](config, target_encoder, codec)
