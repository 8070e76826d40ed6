"""How the network runs for a solve: in numpy for a single request's handful of samples
(:class:`_NumpySampler`) with BLAS held at one thread (:class:`_SerialBlas`), and whether this CPU
runs the batched path's bfloat16 natively."""

from __future__ import annotations

import contextlib
import sys
import threading

import numpy as np
import torch

from ..models.generators import IKGenerator, MLPGenerator


def _cpu_has_fast_bf16() -> bool:
    """True where oneDNN runs bfloat16 matmuls natively on this CPU (AVX512-BF16 / AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # private API: absent in some builds
        return False


class _NumpySampler:
    """An MLP generator's inference in numpy, for the few samples of a single request.

    Torch's per-operation overhead dominates a handful of samples (encoding, latents, four layers
    and decoding are each a few torch calls).  The targets go through the model's own encoders
    (:meth:`TargetEncoder.encode_numpy`, :meth:`JointCodec.decode_raw_numpy`), so only the
    network's layers are written here.  Only used for samples that are refined afterwards, so
    float32 rounding differences do not matter; the latent noise comes from numpy's generator
    (the draws differ from torch's, equally random).
    """

    ACTIVATIONS = {
        "relu": lambda x: np.maximum(x, 0.0, out=x),
        # x * sigmoid(x) with sigmoid(x) = (1 + tanh(x / 2)) / 2: no exp to overflow (far targets
        # give activations beyond float32's exp range, and numpy would warn on every request)
        "silu": lambda x: np.multiply(x, 0.5 + 0.5 * np.tanh(0.5 * x), out=x),
        "tanh": lambda x: np.tanh(x, out=x),
        "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    }

    def __init__(self, model: MLPGenerator) -> None:
        layers = [m for m in model.net.net if hasattr(m, "weight")]
        weights = [(m.weight.detach().float().numpy().copy(), m.bias.detach().float().numpy().copy()) for m in layers]
        self.encoder, self.codec = model.target_encoder, model.codec
        self.act = self.ACTIVATIONS[model.config.activation]
        self.C, self.noise_dim, self.M = model.num_classes, model.noise_dim, model.num_members
        self._slot_classes = model.slot_classes
        # The first layer's input is [features, one-hot class, noise]: its product splits into the
        # features' part (once per target, not per sample), the class's row and the noise's part.
        F = model.cond_dim
        W0, b0 = weights[0]
        self.W_feat = [np.ascontiguousarray(W0[m, :F]) for m in range(self.M)]
        self.class_rows = W0[:, F : F + self.C] + b0  # (M, C, hidden): a class's row plus the bias
        self.bias0 = b0[:, 0]  # (M, hidden), without classes
        self.W_noise = [np.ascontiguousarray(W0[m, F + self.C :]) for m in range(self.M)]
        self.layers = [[(np.ascontiguousarray(W[m]), b[m, 0]) for W, b in weights[1:]] for m in range(self.M)]
        self._classes: dict[int, np.ndarray] = {}  # K -> (K,) slot classes

    #: networks with more weights than this run in torch: their matrix products are no longer
    #: overhead-bound, and numpy's BLAS threads would compete with the kernels' for the cores
    MAX_PARAMETERS = 1_000_000

    @classmethod
    def build(cls, model: IKGenerator) -> "_NumpySampler | None":
        """A sampler for ``model``, or None where it has no numpy twin (other classes, a residual
        stage, GELU, GPU) or is too large to gain from one."""
        if type(model) is not MLPGenerator or model.residual_net is not None or model.config.activation not in cls.ACTIVATIONS or model.device.type != "cpu":
            return None
        if sum(p.numel() for p in model.parameters()) > cls.MAX_PARAMETERS:
            return None
        return cls(model)

    def sample(self, position: np.ndarray, rotation: np.ndarray | None, K: int, rng: np.random.Generator | None) -> np.ndarray:
        """(b, 3) [+ (b, 3, 3)] -> (b, K, dof) float64 joints; slot k from member k mod M, class as
        :meth:`IKGenerator.slot_classes`."""
        b, M = position.shape[0], self.M
        feats, azimuth = self.encoder.encode_numpy(position, rotation)
        classes = self._classes.get(K)
        if classes is None:
            classes = self._classes[K] = self._slot_classes(K).cpu().numpy()
        noise = rng.standard_normal((b, K, self.noise_dim), dtype=np.float32) if self.noise_dim else None
        raw = None
        for m in range(M):
            n_m = len(range(m, K, M))  # slots m, m + M, ... of every target
            if n_m == 0:
                continue
            h = np.empty((b, n_m, self.bias0.shape[-1]), dtype=np.float32)
            h[:] = (feats @ self.W_feat[m])[:, None]
            h += self.class_rows[m, classes[m::M]] if self.C else self.bias0[m]
            if noise is not None:
                h += noise[:, m::M] @ self.W_noise[m]
            h = h.reshape(b * n_m, -1)
            for W, bias in self.layers[m]:
                h = self.act(h)
                h = h @ W
                h += bias
            if raw is None:
                raw = np.empty((b, K, h.shape[-1]), dtype=np.float32)
            raw[:, m::M] = h.reshape(b, n_m, -1)
        return self.codec.decode_raw_numpy(raw, azimuth)


class _SerialBlas:
    """Reference-counted BLAS limit: one thread while any small solve runs in this process.

    numpy's BLAS (OpenBLAS) runs even a (16, 256) x (256, 256) product on its thread pool, whose
    threads then spin; on a machine with few cores, next to numba's threads and a ROS executor,
    that made single requests ~10x slower (13x on 2 cores, issue 28).  The limit is process-wide
    (BLAS has no per-thread setting), so concurrent small solves share one limit: the first
    sets it, the last restores the user's setting.  The BLAS libraries (a scan of the loaded
    libraries, ~1.5 ms) are found once and again when modules were imported since (they may have
    loaded another BLAS); setting a library's thread count is then a direct call (~1 us, where
    threadpoolctl's limiter object costs ~40 us per request).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._libraries: list | None = None  # threadpoolctl library controllers of the BLAS libraries
        self._saved: list[int] = []  # their thread counts before the limit
        self._modules = 0  # len(sys.modules) when the libraries were found

    def _blas_libraries(self) -> list:
        if self._libraries is None or len(sys.modules) != self._modules:
            self._modules = len(sys.modules)
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:  # a pinned requirement; without it the user's BLAS setting stands
                self._libraries = []
            else:
                self._libraries = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        return self._libraries

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                libraries = self._blas_libraries()
                self._saved = [lib.num_threads for lib in libraries]
                for lib, n in zip(libraries, self._saved):
                    if n != 1:
                        lib.set_num_threads(1)
            self._depth += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for lib, n in zip(self._libraries or [], self._saved):
                    if n != 1:
                        lib.set_num_threads(n)


_SERIAL_BLAS = _SerialBlas()


def _serial_blas(small: bool):
    """The BLAS limit for a small solve, else a no-op context."""
    return _SERIAL_BLAS if small else contextlib.nullcontext()
