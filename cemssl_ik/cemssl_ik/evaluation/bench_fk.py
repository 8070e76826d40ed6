"""FK throughput benchmark: our fused batched FK vs reference libraries, in the same process run."""

from __future__ import annotations

import sys
import time
from typing import Callable

import torch

__all__ = ["run_fk_benchmark", "format_fk_table", "time_call"]


def time_call(fn: Callable[[], object], min_seconds: float, max_repeats: int = 100_000) -> float:
    """Median seconds per call over repeats filling about ``min_seconds`` (after one warm-up call)."""
    fn()
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    repeats = max(3, min(max_repeats, int(min_seconds / max(first, 1e-7))))
    # group fast calls so timer resolution does not dominate
    group = max(1, int(1e-3 / max(first, 1e-9)))
    samples = []
    for _ in range(max(3, repeats // group)):
        t0 = time.perf_counter()
        for _ in range(group):
            fn()
        samples.append((time.perf_counter() - t0) / group)
    samples.sort()
    return samples[len(samples) // 2]


def run_fk_benchmark(
    robot: str = "ur3",
    batches: list[int] | None = None,
    min_seconds: float = 0.5,
    progress: bool = True,
) -> list[dict]:
    """Time FK (tip pose) at each batch size for float32 and float64.

    Implementations: ``cemssl_ik`` (this package), ``pytorch_kinematics`` (batched torch reference)
    and ``ur_analytic_ik`` (C++ closed-form FK called once per configuration, float64 only).

    Returns:
        rows of ``{"impl", "dtype", "batch", "seconds_per_call", "configs_per_second"}``.
    """
    from ..kinematics import load_robot
    from ..resources import find_package_file

    batches = batches or [1, 64, 4096, 65536]
    chain = load_robot(robot)
    impls: dict[str, Callable[[torch.Tensor], object]] = {"cemssl_ik": chain.forward}
    try:
        import pytorch_kinematics as pk

        urdf_text = find_package_file(f"urdf/{robot}.urdf").read_text()
        pk_chains = {
            dt: pk.build_serial_chain_from_urdf(urdf_text, chain.tip_link, chain.base_link).to(dtype=dt)
            for dt in (torch.float32, torch.float64)
        }
        impls["pytorch_kinematics"] = lambda q: pk_chains[q.dtype].forward_kinematics(q).get_matrix()
    except ImportError:
        pass
    try:
        import ur_analytic_ik

        ur_fk = getattr(ur_analytic_ik, robot).forward_kinematics

        def _ur_loop(q: torch.Tensor) -> object:
            rows = q.numpy().tolist()
            return [ur_fk(*r) for r in rows]

        impls["ur_analytic_ik (loop)"] = _ur_loop
    except (ImportError, AttributeError):
        pass

    rows = []
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        for batch in batches:
            q = chain.sample_configurations(batch, gen, dtype=dtype)
            for name, fn in impls.items():
                if name.startswith("ur_analytic_ik") and dtype != torch.float64:
                    continue
                with torch.no_grad():
                    sec = time_call(lambda: fn(q), min_seconds)
                rows.append(
                    {
                        "impl": name,
                        "dtype": str(dtype).replace("torch.", ""),
                        "batch": batch,
                        "seconds_per_call": sec,
                        "configs_per_second": batch / sec,
                    }
                )
                if progress:
                    print(f"  {name:<24} {rows[-1]['dtype']:<8} B={batch:<6} {sec * 1e3:9.3f} ms", file=sys.stderr, flush=True)
    return rows


def format_fk_table(rows: list[dict]) -> str:
    """Markdown table: one line per (dtype, batch), one column per implementation (configs/s)."""
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    keys = list(dict.fromkeys((r["dtype"], r["batch"]) for r in rows))
    cell = {(r["impl"], r["dtype"], r["batch"]): r for r in rows}
    head = "| dtype | batch | " + " | ".join(f"{i} [configs/s] (ms/call)" for i in impls) + " | speed-up vs " + impls[1] + " |" if len(impls) > 1 else ""
    lines = [head, "|" + "---|" * (3 + len(impls))]
    for dtype, batch in keys:
        parts = []
        for impl in impls:
            r = cell.get((impl, dtype, batch))
            parts.append("-" if r is None else f"{r['configs_per_second']:,.0f} ({r['seconds_per_call'] * 1e3:.3f})")
        ours, ref = cell.get((impls[0], dtype, batch)), cell.get((impls[1], dtype, batch)) if len(impls) > 1 else None
        ratio = f"{ref['seconds_per_call'] / ours['seconds_per_call']:.1f}x" if ours and ref else "-"
        lines.append(f"| {dtype} | {batch} | " + " | ".join(parts) + f" | {ratio} |")
    return "\n".join(lines)
