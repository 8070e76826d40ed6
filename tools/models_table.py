"""Print the markdown table of the shipped models for cemssl_ik/models/README.md.

For each checkpoint in cemssl_ik/models/: the command that trained it and its wall time (both
recorded in the checkpoint's JSON), and its `cemssl-ik eval` figures, measured now on held-out
targets (model alone, no refinement).  Usage: python tools/models_table.py [--targets 2000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cemssl_ik.evaluation.precision import evaluate_precision
from cemssl_ik.kinematics import load_robot

from cemssl_ik.models import load_checkpoint

ORDER = ["ur3_fkloss_position", "ur3_regression_pose", "ur3_cvae", "ur3_cvae_cemssl_fk", "ur3_cgan", "ur3_cgan_cemssl_fk", "ur3_cinn", "ur3_cinn_cemssl_fk"]


def _pruning(training: dict) -> dict | None:
    """The member selection of a checkpoint, or of the checkpoint it was fine-tuned from."""
    if "pruning" in training:
        return training["pruning"]
    return training.get("finetuned_from", {}).get("training", {}).get("pruning")


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
        minutes = tr.get("wall_seconds", float("nan")) / 60
        if "finetuned_from" in tr:
            minutes += tr["finetuned_from"]["training"].get("wall_seconds", float("nan")) / 60
        method = info.metadata["method"] + (" + residual stage" if "residual_stage_added" in tr else " + CEMSSL" if "finetuned_from" in tr else "")
        if model.num_classes:
            method += " (branch classes)"
        pruning = _pruning(tr)
        if pruning:
            method += f" ({model.num_members} of {len(pruning['member_errors_m'])} members)"
        orient = "-" if oe is None else f"{oe['mean']:.2f}"
        rows.append(f"| `{name}` | {method} | {model.config.target} | {pe['mean']:.3f} | {pe['median']:.3f} | {pe['p95']:.3f} | {orient} | {minutes:.1f} |")
    print("| model | method | targets | mean [mm] | median [mm] | p95 [mm] | orientation mean [deg] | training [min] |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    for name in ORDER:
        if (root / f"{name}.json").is_file():
            tr = json.loads((root / f"{name}.json").read_text())["training"]
            steps = []
            base = tr.get("finetuned_from", {})
            if Path(base.get("path", "")).stem == name:  # fine-tuned from an earlier version of itself
                steps.append(base["training"].get("command", ""))
                if "pruning" in base["training"]:
                    steps.append(base["training"]["pruning"]["command"])
            steps.append(tr.get("command", ""))
            if "pruning" in tr:
                steps.append(tr["pruning"]["command"])
            print(f"- `{name}`: " + ", then ".join(f"`{c}`" for c in steps))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
