"""What every report section shares: its run context, its result type, tables and figures."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ...kinematics import rotation_angle
from ...kinematics.chain import KinematicChain
from .scales import ReportScale

__all__ = ["Context", "SectionResult", "errors", "md_table", "pyplot", "save_figure", "with_limits"]


@dataclass
class Context:
    """One report run: its sizes, output folder, seed and progress log."""

    scale: ReportScale
    out: Path
    seed: int
    log: Callable[[str], None]

    @property
    def figures(self) -> Path:
        return self.out / "results"

    def figure(self, name: str) -> Path:
        self.figures.mkdir(parents=True, exist_ok=True)
        return self.figures / name


def _from_json(tp: Any, value: Any) -> Any:
    """``value`` read from JSON as type ``tp``: dataclasses (and lists / dicts of them) rebuilt."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return tp.from_dict(value)
    if origin is list and args and isinstance(value, list):
        return [_from_json(args[0], v) for v in value]
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: _from_json(args[1], v) for k, v in value.items()}
    return value


class SectionResult:
    """Base of the sections' result dataclasses: the JSON form in ``report.json`` and back.

    ``from_dict`` ignores keys the class does not know and leaves missing fields at their
    defaults, so a ``report.json`` written by an earlier version still renders.
    """

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict) -> Any:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: _from_json(hints[k], v) for k, v in data.items() if k in names})


def md_table(headers: list[str], rows: list[list]) -> str:
    """A markdown table; floats with 2 decimals, 3 significant digits when very small or large."""

    def fmt(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            if math.isnan(v):
                return "-"
            a = abs(v)
            return f"{v:.3g}" if (a >= 1e4 or (0 < a < 1e-2)) else f"{v:,.2f}" if a < 100 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def pyplot():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(ctx: Context, fig, name: str) -> str:
    """Save ``fig`` as ``results/<name>``, close it and return the link RESULTS.md uses."""
    fig.tight_layout()
    fig.savefig(ctx.figure(name), dpi=110)
    pyplot().close(fig)
    return f"results/{name}"


def with_limits(chain: KinematicChain, limit: float, name: str) -> KinematicChain:
    """The chain with every movable joint limited to [-limit, limit]."""
    joints = [dataclasses.replace(j, lower=-limit, upper=limit) if j.movable else j for j in chain.joints]
    return KinematicChain(joints, name=name)


def errors(chain: KinematicChain, q: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, dof) answers -> position (B, K) metres and orientation (B, K) radians errors (exact FK, float64)."""
    fk = chain.forward(torch.nan_to_num(q.double()))
    pe = (fk.position - position[:, None]).norm(dim=-1)
    oe = rotation_angle(fk.rotation, rotation[:, None].expand_as(fk.rotation)) if rotation is not None else torch.zeros_like(pe)
    return pe, oe
