"""``cemssl-ik eval``, ``prune`` and ``solve``: what is done with a trained model."""

from __future__ import annotations

import argparse
import json
import math
import sys

from .common import CLIError, _finite, _unit_quaternion


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluation.evaluate import evaluate_model
    from ..models import load_model

    for flag in ("targets", "samples"):
        if getattr(args, flag) < 1:
            raise CLIError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.diversity_samples < 2 or args.reference_orientations < 1 or args.diversity_targets < 0:
        raise CLIError("--diversity-samples must be >= 2, --reference-orientations >= 1, --diversity-targets >= 0")
    loaded = load_model(args.model, args.urdf, device=args.device)
    model, info, chain = loaded.model, loaded.info, loaded.chain
    ev = evaluate_model(
        model, chain, num_targets=args.targets, samples_per_target=args.samples, seed=args.seed,
        diversity_targets=args.diversity_targets, diversity_samples=args.diversity_samples, reference_orientations=args.reference_orientations,
    )
    out = {"model": str(info.path), "method": info.metadata["method"], "trained_by": (info.training or {}).get("trained_by"), "target": model.config.target, **ev.to_dict()}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        pe = out["position_error_mm"]
        trained = f", trained by {out['trained_by']}" if out["trained_by"] else ""
        print(f"{out['model']} ({out['method']}{trained}, {out['target']}): {out['num_targets']} held-out targets x {out['samples_per_target']} samples, model alone")
        print(f"  position error [mm]   mean {pe['mean']:.4f}  median {pe['median']:.4f}  p95 {pe['p95']:.4f}  max {pe['max']:.4f}")
        if "orientation_error_deg" in out:
            oe = out["orientation_error_deg"]
            print(f"  orientation err [deg] mean {oe['mean']:.4f}  median {oe['median']:.4f}  p95 {oe['p95']:.4f}  max {oe['max']:.4f}")
        print(f"  in limits {out['in_limits_fraction'] * 100:.2f} %   sampling time {out['seconds']:.3f} s")
        d = out["diversity"]
        if ev.diversity is None:
            print(f"  class coverage / MMD: skipped ({d['skipped']})")
        else:
            print(
                f"  class coverage {d['class_coverage']:.3f}  MMD {d['mmd']:.4f} (noise floor {d['mmd_noise_floor']:.4f})  "
                f"on {d['targets']} targets x {d['samples_per_target']} samples, analytic reference"
            )
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    import shlex

    import torch

    from ..evaluation.precision import member_errors
    from ..learning.targets import sample_targets
    from ..models import load_model, save_checkpoint, select_members
    from ..seeds import SELECTION_SEED_OFFSET

    if not args.max_ratio > 1:
        raise CLIError(f"--max-ratio must be > 1, got {args.max_ratio}")
    if args.targets < 1:
        raise CLIError(f"--targets must be >= 1, got {args.targets}")
    torch.set_num_threads(max(1, args.threads))
    loaded = load_model(args.model, args.urdf)
    model, info, chain = loaded.model, loaded.info, loaded.chain
    if model.num_classes:
        raise CLIError("models with branch classes are not pruned (their members are not compared per class)")
    if model.num_members < 2:
        raise CLIError(f"{info.path} has {model.num_members} member: nothing to choose from")
    targets = sample_targets(chain, args.targets, torch.Generator().manual_seed(args.seed + SELECTION_SEED_OFFSET))
    errs = member_errors(model, chain, targets, seed=args.seed)
    median = float(errs.median())
    keep = [m for m in range(model.num_members) if float(errs[m]) <= args.max_ratio * median]
    for m in range(model.num_members):
        print(f"member {m}: mean position error {float(errs[m]) * 1e3:.4f} mm  {'kept' if m in keep else 'dropped'}")
    print(f"median member {median * 1e3:.4f} mm; dropping members above {args.max_ratio:g}x that: kept {len(keep)} of {model.num_members}")
    pruned = select_members(model, keep)
    training = dict(info.training)
    training["pruning"] = {
        "source": str(info.path),
        "command": "cemssl-ik " + shlex.join(sys.argv[1:]),
        "selection_targets": args.targets,
        "seed": args.seed,
        "max_ratio": args.max_ratio,
        "member_errors_m": [float(e) for e in errs],
        "kept": keep,
    }
    path = save_checkpoint(args.out, pruned, chain, training)
    print(f"saved {path} ({len(keep)} members)")
    return 0


def _cmd_solve(args: argparse.Namespace) -> int:
    import torch

    from ..kinematics import quaternion_to_matrix
    from ..models import load_model
    from ..solver import IKSolver, SolverOptions

    if len(args.target) not in (3, 7):
        raise CLIError(f"target must be x y z (position) or x y z qx qy qz qw (pose), got {len(args.target)} numbers")
    loaded = load_model(args.model)
    model, chain = loaded.model, loaded.chain
    pos = torch.tensor([_finite(args.target[:3], "position")], dtype=torch.float64)
    rot = quaternion_to_matrix(torch.tensor(_unit_quaternion(args.target[3:]), dtype=torch.float64))[None] if len(args.target) == 7 else None
    seed = None
    if args.seed_joints is not None:
        if len(args.seed_joints) != chain.dof:
            raise CLIError(f"--seed-joints needs {chain.dof} values {list(chain.joint_names)}, got {len(args.seed_joints)}")
        seed = torch.tensor(_finite(args.seed_joints, "seed joints"), dtype=torch.float64)
    opts = SolverOptions(num_solutions=args.k, refine=not args.no_refine, position_tolerance=args.position_tolerance, orientation_tolerance=args.orientation_tolerance)
    if not opts.refine:
        opts.position_tolerance, opts.orientation_tolerance = math.inf, math.inf
    res = IKSolver(model, chain).solve(pos, rot, seed, opts)
    ok = res.valid[0]
    out = {
        "joint_names": list(chain.joint_names),
        "solutions": res.solutions[0][ok].tolist(),
        "position_errors": res.position_error[0][ok].tolist(),
        "orientation_errors": res.orientation_error[0][ok].tolist() if rot is not None else [],
        "branches": res.branch[0][ok].tolist(),
        "refined": opts.refine,
        "seconds": sum(res.timings.values()),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{len(out['solutions'])} distinct solution(s) of {args.k} requested ({'refined' if opts.refine else 'raw model samples'}, {out['seconds'] * 1e3:.1f} ms):")
        print(f"  {'branch':>6}  " + " ".join(f"{n[:11]:>11}" for n in chain.joint_names) + "   pos_err[m]" + ("  rot_err[rad]" if rot is not None else ""))
        for i, q in enumerate(out["solutions"]):
            rot_col = f"   {out['orientation_errors'][i]:.2e}" if rot is not None else ""
            print(f"  {out['branches'][i]:>6}  " + " ".join(f"{v:+11.6f}" for v in q) + f"   {out['position_errors'][i]:.2e}" + rot_col)
    return 0 if out["solutions"] else 1


def register(sub: argparse._SubParsersAction) -> None:
    """The ``eval``, ``prune`` and ``solve`` subcommands."""
    ev = sub.add_parser("eval", help="precision of a model alone (no refinement) on held-out targets")
    ev.add_argument("--model", required=True, help="shipped model name or checkpoint path")
    ev.add_argument("--targets", type=int, default=2000, help="number of held-out targets")
    ev.add_argument("--samples", type=int, default=1, help="samples per target")
    ev.add_argument("--seed", type=int, default=0, help="seed (targets use seed + an offset distinct from training)")
    ev.add_argument("--diversity-targets", type=int, default=100, help="first N targets also scored for class coverage and MMD to the analytic posterior (UR arms; 0: skip)")
    ev.add_argument("--diversity-samples", type=int, default=128, help="model samples per diversity target")
    ev.add_argument("--reference-orientations", type=int, default=256, help="random orientations per position for the analytic reference posterior")
    ev.add_argument("--urdf", default=None, help="URDF of the model's robot when it is not a built-in one")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_cmd_eval)

    pr = sub.add_parser("prune", help="drop ensemble members far less precise than the others (held-out selection targets)")
    pr.add_argument("--model", required=True, help="shipped model name or checkpoint path")
    pr.add_argument("--out", required=True, help="where to save the pruned checkpoint")
    pr.add_argument("--max-ratio", type=float, default=2.0, help="drop members whose mean error exceeds this multiple of the median member's")
    pr.add_argument("--targets", type=int, default=2000, help="selection targets (drawn apart from training and evaluation targets)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--threads", type=int, default=2)
    pr.add_argument("--urdf", default=None, help="URDF of the model's robot when it is not a built-in one")
    pr.set_defaults(func=_cmd_prune)

    so = sub.add_parser("solve", help="multi-solution IK of one target with a learned model (+ refinement)")
    so.add_argument("--model", required=True, help="shipped model name or checkpoint path")
    so.add_argument("-k", type=int, default=8, help="number of distinct solutions (default 8)")
    so.add_argument("--seed-joints", type=float, nargs="+", default=None, help="seed joint values (chain order): ranks solutions and picks 2*pi copies")
    so.add_argument("--no-refine", action="store_true", help="return the model's raw samples (no damped least squares)")
    so.add_argument("--position-tolerance", type=float, default=1e-6, help="metres")
    so.add_argument("--orientation-tolerance", type=float, default=1e-5, help="radians")
    so.add_argument("--json", action="store_true")
    so.add_argument("target", nargs="+", type=float, help="x y z [qx qy qz qw] in the chain base frame")
    so.set_defaults(func=_cmd_solve)
