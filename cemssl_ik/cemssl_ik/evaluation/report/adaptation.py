"""Section ``adaptation``: the learner's strategies on a simulated UR3 whose links are longer than
its URDF says (paper 003 Table IV analog; :mod:`..bench_adaptation`).

Each run takes minutes (``calibrate`` trains for the scale's budget, ``robot`` moves the arm
thousands of times), so the records live in ``results/adaptation.json`` — the file
``cemssl-ik bench adaptation --out docs/results/adaptation.json`` writes — and a record already
there for the same (link change, strategy, noise, model, seed) is kept, with the moves and minutes
it ran with; only missing ones are run, and the file is rewritten after each.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from ...models.checkpoint import atomic_write_bytes
from .base import Context, SectionResult, md_table
from .ur3_position import POSITION_MODEL

__all__ = ["AdaptationResult", "RECORDS_FILE", "run", "template_values"]

RECORDS_FILE = "adaptation.json"
STRATEGIES = ("calibrate", "robot")
_KEY = ("link_change_cm", "strategy", "noise_mm", "model", "seed")


@dataclass
class AdaptationResult(SectionResult):
    """``records``: :class:`~..bench_adaptation.AdaptationRecord` dicts, one per setting; ``reused``:
    how many of them were already in the records file."""

    records: list[dict]
    reused: int = 0
    model: str = POSITION_MODEL


def _read(path) -> list[dict]:
    if not path.is_file() or path.stat().st_size > 1 << 20:
        return []
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return []
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def run(ctx: Context) -> AdaptationResult:
    from ..bench_adaptation import run_adaptation

    s = ctx.scale
    path = ctx.figure(RECORDS_FILE)
    kept = _read(path)
    have = {tuple(r.get(k) for k in _KEY): r for r in kept}
    records, reused = [], 0
    for change in s.adaptation_changes:
        for strategy in STRATEGIES:
            for noise in s.adaptation_noise:
                key = (float(change), strategy, float(noise), POSITION_MODEL, ctx.seed)
                if key in have:
                    records.append(have[key])
                    reused += 1
                    continue
                if strategy == "robot":
                    moves = s.adaptation_robot_moves
                else:
                    moves = s.adaptation_identify_moves * (2 if noise > 0 else 1)
                ctx.log(f"adaptation: +{change:g} cm, {strategy}, noise {noise:g} mm ({moves} moves)")
                rec = run_adaptation(change, strategy, noise, moves, s.adaptation_minutes, model_name=POSITION_MODEL, seed=ctx.seed, progress=ctx.log).to_dict()
                records.append(rec)
                have[key] = rec
                atomic_write_bytes(path, (json.dumps(list(have.values()), indent=2) + "\n").encode())
    return AdaptationResult(records, reused)


def template_values(r: AdaptationResult) -> dict[str, str]:
    def num(rec: dict, key: str) -> float:
        v = rec.get(key)
        return float(v) if isinstance(v, (int, float)) else math.nan

    rows = [
        [f"+{num(x, 'link_change_cm'):g}", x.get("strategy"), f"{num(x, 'noise_mm'):g}", int(num(x, "robot_moves")), round(num(x, "minutes"), 1),
         num(x, "error_before_mm"), f"{num(x, 'error_after_mm'):.4g}", f"{num(x, 'error_after_safe_mm'):.4g}", num(x, "refined_error_mm")]
        for x in sorted(r.records, key=lambda x: (x.get("strategy", ""), num(x, "link_change_cm"), num(x, "noise_mm")))
    ]  # fmt: skip
    headers = ["every link (cm)", "strategy", "noise (mm)", "robot moves", "minutes", "before (mm)", "model alone after (mm)", "after, safe workspace (mm)", "refined after (mm)"]
    return {"model": r.model, "table": md_table(headers, rows), "records": str(len(r.records)), "reused": str(r.reused)}
