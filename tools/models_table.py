"""Print the markdown table of the shipped models for cemssl_ik/models/README.md.

For each checkpoint in cemssl_ik/models/: what produced its weights (``trained_by``, from its
training record), the recipe that reproduces it, its wall time (its own and its parent's, both
recorded), and its `cemssl-ik eval` figures, measured now on held-out targets (model alone, no
refinement).  Usage: python tools/models_table.py [--targets 2000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cemssl_ik.evaluation.precision import evaluate_precision
from cemssl_ik.kinematics import load_robot

from cemssl_ik.models import load_checkpoint, read_metadata

ORDER = ["ur3_fkloss_position", "ur3_regression_pose", "ur3_cvae", "ur3_cvae_cemssl_fk", "ur3_cgan", "ur3_cgan_cemssl_fk", "ur3_cinn", "ur3_cinn_cemssl_fk"]


def _minutes(root: Path, training: dict) -> float:
    """Wall time of the model's training, its parent's included (a fine-tune names its parent)."""
    minutes = training.get("wall_seconds", float("nan")) / 60
    parent = training.get("parent", {}).get("name")
    if parent:
        minutes += _minutes(root, read_metadata(root / parent).training)
    return minutes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=2000)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1] / "cemssl_ik" / "models"
    chain = load_robot("ur3")
    rows, figures = [], {}
    for name in ORDER:
        if not (root / f"{name}.json").is_file():
            rows.append(f"| `{name}` | (not trained yet) | | | | | | |")
            continue
        model, info = load_checkpoint(root / name, chain)
        rep = evaluate_precision(model, chain, num_targets=args.targets, samples_per_target=1, seed=0).to_dict()
        figures[name] = rep
        pe = rep["position_error_mm"]
        oe = rep.get("orientation_error_deg")
        tr = info.training
        method = f"{info.trained_by} ({info.metadata['method']} architecture)"
        if model.num_classes:
            method += " (branch classes)"
        pruning = tr.get("pruning")
        if pruning:
            method += f" ({model.num_members} of {len(pruning['member_errors_m'])} members)"
        orient = "-" if oe is None else f"{oe['mean']:.2f}"
        rows.append(f"| `{name}` | {method} | {model.config.target} | {pe['mean']:.3f} | {pe['median']:.3f} | {pe['p95']:.3f} | {orient} | {_minutes(root, tr):.1f} |")
    print("| model | trained by | targets | mean [mm] | median [mm] | p95 [mm] | orientation mean [deg] | training [min] |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    for name in ORDER:
        if (root / f"{name}.json").is_file():
            tr = read_metadata(root / name).training
            discarded = [f"{p['kind']} ({p.get('iterations', p.get('steps'))})" for p in tr.get("phases", []) if not p.get("survived", True)]
            note = f"; discarded by keep-best: {', '.join(discarded)}" if discarded else ""
            print(f"- `{name}`: `{tr.get('command', '')}`{note}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
