"""The numba decorators the kernels share (numba is a pinned requirement; without it the solver
uses its torch path)."""

from __future__ import annotations

try:
    import numba as nb

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    nb = None
    AVAILABLE = False

if AVAILABLE:
    _jit = nb.njit(cache=True, nogil=True, fastmath=False)
    _jit_par = nb.njit(cache=True, nogil=True, fastmath=False, parallel=True)
    # compiled into their callers: a separate function gets the chain's named constants (eleven
    # arrays) by value on every call, which made refinement ~25 % slower than inlined
    _jit_inline = nb.njit(cache=True, nogil=True, fastmath=False, inline="always")
