"""Running the report: sections in turn, ``results/report.json`` and RESULTS.md after each."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import time
import traceback
from pathlib import Path
from typing import Callable

import torch

from ...models.checkpoint import atomic_write_bytes
from .base import Context
from .render import render_markdown
from .scales import SCALES
from .sections import SECTIONS

__all__ = ["machine_info", "rerender", "run_report", "summary_rows"]

_VERSIONS = ("torch", "numpy", "FrEIA", "safetensors", "ur-analytic-ik", "pytracik", "pytorch-kinematics", "ikpy", "matplotlib")


def machine_info() -> dict:
    """CPU, core count, torch threads, Python, platform, package versions and git commit."""
    cpu = platform.processor() or ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for pkg in _VERSIONS:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "platform": platform.platform(), "versions": versions, "git_commit": commit}


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def _write(ctx: Context, report: dict) -> None:
    atomic_write_bytes(ctx.figures / "report.json", json.dumps(report, indent=1, default=float).encode())
    atomic_write_bytes(ctx.out / "RESULTS.md", render_markdown(report).encode())


def _start(ctx: Context, names: list[str], command: str, update: bool) -> dict:
    """A new report, or with ``update`` the earlier one of ``ctx.out`` with this update recorded."""
    previous = ctx.figures / "report.json"
    if not update:
        return {"scale": dataclasses.asdict(ctx.scale), "command": command, "machine": machine_info(), "started": _now(), "sections": {}, "section_seconds": {}}
    if not previous.is_file():
        raise FileNotFoundError(f"--update needs an earlier report at {previous}")
    report = json.loads(previous.read_text())
    if report["scale"]["name"] != ctx.scale.name:
        raise ValueError(f"{previous} is a {report['scale']['name']} report; update it at the same scale")
    m = machine_info()
    report.setdefault("updates", []).append({"sections": names, "command": command, "started": _now(), "git_commit": m["git_commit"], "versions": m["versions"], "cpu": m["cpu"]})
    report.pop("rerendered", None)
    return report


def run_report(out: str | Path, scale: str = "full", sections: list[str] | None = None, seed: int = 0, command: str = "", log: Callable[[str], None] = print, update: bool = False) -> dict:
    """Run the report's sections, write ``<out>/results/report.json``, figures and ``<out>/RESULTS.md``.

    A failing section is recorded with its traceback and the others still run.  With ``update``,
    the existing report.json of ``out`` is kept and only ``sections`` are run again and replaced;
    the report records each such update (sections, command, start time, git commit).
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    names = list(SECTIONS) if not sections else sections
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; known: {list(SECTIONS)}")
    ctx = Context(SCALES[scale], Path(out), seed, log)
    ctx.figures.mkdir(parents=True, exist_ok=True)
    report = _start(ctx, names, command, update)
    total_before = report.get("total_seconds", 0.0) if update else 0.0
    t_all = time.perf_counter()
    for name in names:
        log(f"[report] {name} ...")
        t0 = time.perf_counter()
        try:
            report["sections"][name] = SECTIONS[name].run(ctx).to_dict()
        except Exception as exc:  # keep the other sections; the failure is reported, not hidden
            report["sections"][name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            log(f"[report] {name} FAILED: {exc!r}")
        report["section_seconds"][name] = time.perf_counter() - t0
        log(f"[report] {name} done in {report['section_seconds'][name]:.0f} s")
        report["total_seconds"] = total_before + time.perf_counter() - t_all
        _write(ctx, report)
    report["failed_sections"] = [n for n, v in report["sections"].items() if "error" in v]
    return report


def rerender(out: str | Path) -> Path:
    """Write ``<out>/RESULTS.md`` again from ``<out>/results/report.json`` (same numbers, current wording)."""
    out = Path(out)
    report = json.loads((out / "results" / "report.json").read_text())
    report["rerendered"] = _now()
    path = out / "RESULTS.md"
    atomic_write_bytes(path, render_markdown(report).encode())
    return path


def summary_rows(report: dict) -> list[tuple[str, str]]:
    """(what, figure) lines for the console summary."""
    out = [(f"section {n}", "FAILED: " + v["error"]) for n, v in report["sections"].items() if "error" in v]
    sec = {k: SECTIONS[k].result.from_dict(v) for k, v in report["sections"].items() if "error" not in v and k in SECTIONS}
    if "ur3_position" in sec:
        for name, r in sec["ur3_position"].models.items():
            out.append((f"UR3 position {name}", f"mean {r.position_error_mm['mean']:.3f} mm, class coverage {r.class_coverage:.2f}, MMD {r.mmd:.3f}"))
    if "ur3_pose" in sec:
        for name, r in sec["ur3_pose"].solvers.items():
            if "absent" not in r:
                out.append((f"UR3 pose {name}", f"{r['precise_per_target']:.2f} precise solutions/target, coverage {r['analytic_coverage'] * 100:.1f} %, {r['precise_solutions_per_second']:,.0f} solutions/s"))
    if "speed" in sec:
        for r in sec["speed"].rows:
            out.append((f"speed {r['solver']} batch {r['batch']}", f"{r['solutions_per_second']:,.0f} solutions/s"))
    return out
