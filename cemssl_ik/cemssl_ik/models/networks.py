"""Batched multilayer perceptrons: M independently initialized members evaluated in one batched matmul.

An ensemble of equal-shaped MLPs (the model ensemble of the CEMSSL paper, Qu et al.) trains M times faster this way on a
CPU than a Python loop over M modules, because every layer is one ``baddbmm`` over (M, B, width).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

__all__ = ["BatchedLinear", "BatchedMLP", "ACTIVATIONS", "hidden_precision"]

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


class BatchedLinear(nn.Module):
    """M independent linear layers: (M, B, in) -> (M, B, out). Initialized like ``nn.Linear``.

    ``compute_dtype`` (None: the parameters' dtype) runs the matrix product in a lower precision:
    input and weight are cast to it and the product is cast back before the bias is added, so the
    parameters, their gradients and the optimizer state stay in full precision (mixed precision
    with master weights).  It is runtime state, never saved; see :func:`hidden_precision`.
    """

    compute_dtype: torch.dtype | None = None

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        bound = 1.0 / math.sqrt(in_features)
        # nn.Linear's default (kaiming uniform with a=sqrt(5)) reduces to U(-1/sqrt(in), 1/sqrt(in))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dt = self.compute_dtype
        if dt is None or dt == self.weight.dtype:
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.bmm(x.to(dt), self.weight.to(dt)).to(self.weight.dtype) + self.bias


class BatchedMLP(nn.Module):
    """M member MLPs ``in -> hidden[0] -> ... -> hidden[-1] -> out`` with a hidden activation.

    Args:
        members: number of independent members M.
        in_features, out_features: input / output widths.
        hidden: hidden layer widths.
        activation: key of :data:`ACTIVATIONS`.
    """

    def __init__(self, members: int, in_features: int, out_features: int, hidden: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        widths = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers.append(BatchedLinear(members, a, b))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)
        self.members = members

    def hidden_layers(self) -> list[BatchedLinear]:
        """The layers between two hidden widths (all but the input and output layers)."""
        linears = [m for m in self.net if isinstance(m, BatchedLinear)]
        return linears[1:-1]

    def output_layer(self) -> BatchedLinear:
        """The last layer (hidden width -> out)."""
        return self.net[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(M, B, in) -> (M, B, out)."""
        if x.ndim != 3 or x.shape[0] != self.members:
            raise ValueError(f"expected input (M={self.members}, B, in), got {tuple(x.shape)}")
        return self.net(x)


@contextmanager
def hidden_precision(module: nn.Module, dtype: torch.dtype | None) -> Iterator[None]:
    """Run the hidden-to-hidden products of every :class:`BatchedMLP` in ``module`` in ``dtype``.

    ``dtype=None`` changes nothing.  The input and output layers stay in full precision: the input
    carries the target's coordinates, and the output is the joint encoding.  bfloat16 keeps 8
    significant bits, so its rounding bounds the precision a model can show while it is on: this is
    for the early, coarse part of a training run (``bf16_fraction`` of
    :class:`~cemssl_ik.learning.unsupervised.UnsupervisedConfig` and of
    :class:`~cemssl_ik.learning.cemssl.CEMSSLConfig`, the latter for its training phases), where
    it makes steps faster on CPUs with AMX / AVX512-BF16 units.  Without such units bfloat16
    products are emulated and slower.  Measurements: docs/lab-notes.md.
    """
    layers = [layer for mlp in module.modules() if isinstance(mlp, BatchedMLP) for layer in mlp.hidden_layers()] if dtype is not None else []
    saved = [layer.compute_dtype for layer in layers]
    for layer in layers:
        layer.compute_dtype = dtype
    try:
        yield
    finally:
        for layer, old in zip(layers, saved):
            layer.compute_dtype = old
