"""``cemssl-ik``: command-line interface to the library (no ROS needed).

Subcommands:
    fk            forward kinematics of one configuration
    ik-analytic   all closed-form solutions of a UR3 pose
    train         train a model by a recipe (phases: pretrain, fkloss, cemssl, residual), from scratch or a checkpoint
    eval          precision of a model alone on held-out targets
    bench fk      FK throughput vs a reference library
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Sequence

__all__ = ["main"]


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that reads every float spelling after a ``-`` as a value, not an option.

    argparse takes ``-5e-05``, ``-1E+3`` or ``-inf`` for unknown options (its negative-number
    pattern knows only ``-5`` and ``-.5``); joint values and targets come from scripts that print
    any of them.  Sub-parsers inherit the class (``add_subparsers`` uses ``type(self)``).
    """

    def _parse_optional(self, arg_string: str):  # type: ignore[no-untyped-def]
        if arg_string.startswith("-") and arg_string not in self._option_string_actions and not self._has_negative_number_optionals and _is_number(arg_string):
            return None  # a positional value
        return super()._parse_optional(arg_string)


def _finite(values: Sequence[float], what: str) -> list[float]:
    if not all(math.isfinite(v) for v in values):
        raise CLIError(f"{what} must be finite numbers, got {list(values)}")
    return list(values)


def _unit_quaternion(quat: Sequence[float]) -> list[float]:
    quat = _finite(quat, "quaternion")
    norm = math.sqrt(sum(v * v for v in quat))
    if abs(norm - 1.0) > 1e-3:
        raise CLIError(f"quaternion (x y z w) must have unit norm, got norm {norm:.6g}; normalize it first")
    return [v / norm for v in quat]


def _cmd_fk(args: argparse.Namespace) -> int:
    import torch

    from .kinematics import load_robot, matrix_to_quaternion

    chain = load_robot(args.robot, args.base, args.tip)
    if len(args.joints) != chain.dof:
        raise CLIError(f"{chain.name} {chain.base_link}->{chain.tip_link} has {chain.dof} joints {list(chain.joint_names)}, got {len(args.joints)} values")
    q = torch.tensor(_finite(args.joints, "joint values"), dtype=torch.float64)
    fk = chain.forward(q)
    out = {
        "position": fk.position.tolist(),
        "quaternion": matrix_to_quaternion(fk.rotation).tolist(),
        "base": chain.base_link,
        "tip": chain.tip_link,
    }
    if not chain.within_limits(q).item():
        out["warning"] = "configuration outside the joint limits"
    if args.json:
        print(json.dumps(out))
    else:
        x, y, z = out["position"]
        qx, qy, qz, qw = out["quaternion"]
        print(f"{chain.tip_link} in {chain.base_link}:")
        print(f"  position   [m]      x={x:+.6f} y={y:+.6f} z={z:+.6f}")
        print(f"  quaternion (xyzw)   {qx:+.6f} {qy:+.6f} {qz:+.6f} {qw:+.6f}")
        if "warning" in out:
            print(f"  warning: {out['warning']}")
    return 0


def _cmd_ik_analytic(args: argparse.Namespace) -> int:
    import torch

    from .kinematics import URAnalyticIK, load_robot, quaternion_to_matrix, rotation_angle

    if args.robot != "ur3":
        raise CLIError(f"ik-analytic supports the UR3 only (got --robot {args.robot!r})")
    pos = torch.tensor(_finite(args.pose[:3], "position"), dtype=torch.float64)
    quat = torch.tensor(_unit_quaternion(args.pose[3:]), dtype=torch.float64)
    R = quaternion_to_matrix(quat)
    res = URAnalyticIK("ur3").solve(pos[None], R[None], frame=args.frame)
    chain = load_robot("ur3", base_link=args.frame, tip_link="tool0")
    sols = res.solutions[0][res.valid[0]]
    branches = torch.nonzero(res.valid[0]).flatten()
    if len(sols):
        fk = chain.forward(sols)
        pos_err = (fk.position - pos).norm(dim=-1)
        rot_err = rotation_angle(fk.rotation, R.expand(len(sols), 3, 3))
    else:
        pos_err = rot_err = torch.zeros(0, dtype=torch.float64)
    out = {
        "frame": args.frame,
        "joint_names": list(chain.joint_names),
        "solutions": sols.tolist(),
        "branches": branches.tolist(),
        "position_errors": pos_err.tolist(),
        "orientation_errors": rot_err.tolist(),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{len(sols)} analytic solution(s) for tool0 in {args.frame} (radians):")
        if len(sols):
            print(f"  {'branch':>6}  " + " ".join(f"{n[:11]:>11}" for n in chain.joint_names) + "   pos_err[m]  rot_err[rad]")
        for b, q, pe, re_ in zip(out["branches"], out["solutions"], out["position_errors"], out["orientation_errors"]):
            print(f"  {b:>6}  " + " ".join(f"{v:+11.6f}" for v in q) + f"   {pe:.2e}    {re_:.2e}")
    return 0 if len(sols) else 1


def _cmd_bench_fk(args: argparse.Namespace) -> int:
    from .evaluation.bench_fk import format_fk_table, run_fk_benchmark

    rows = run_fk_benchmark(robot=args.robot, batches=args.batches, min_seconds=args.min_seconds, progress=not args.json)
    if args.json:
        print(json.dumps({"robot": args.robot, "rows": rows}, indent=2))
    else:
        print(format_fk_table(rows))
    return 0


#: `train` flags replaced by recipe keys (`--set KEY=VALUE`); using one names its replacement
_REMOVED_TRAIN_FLAGS = {
    "--robot": "robot",
    "--base": "base_link",
    "--tip": "tip_link",
    "--seed": "seed (model initialization) and KIND.seed (each phase)",
    "--method": "model.method",
    "--pose": "model.target=pose",
    "--members": "model.members",
    "--latent-dim": "model.latent_dim",
    "--hidden": "model.hidden",
    "--activation": "model.activation",
    "--kl-weight": "model.kl_weight",
    "--coupling-blocks": "model.coupling_blocks",
    "--branches": "model.branches",
    "--base-symmetry": "model.base_symmetry, or finetune.base_symmetry when fine-tuning",
    "--finetune": "finetune.parent",
    "--steps": "pretrain.steps or fkloss.steps",
    "--pretrain-steps": "pretrain.steps",
    "--pretrain-lr": "pretrain.lr",
    "--warmup-steps": "fkloss.steps",
    "--warmup-lr": "fkloss.lr",
    "--bf16-fraction": "fkloss.bf16_fraction",
    "--ema-decay": "fkloss.ema_decay",
    "--fk-loss": "fkloss.position_loss, residual.position_loss or cemssl.fk_position_loss",
    "--fk-loss-scale": "fkloss.distance_scale, residual.distance_scale or cemssl.fk_distance_scale (metres)",
    "--iterations": "cemssl.iterations",
    "--epochs": "cemssl.epochs",
    "--samples-per-iteration": "cemssl.samples_per_iteration",
    "--exploration": "cemssl.exploration_noise",
    "--plain-targets": "cemssl.projected_targets=false",
    "--no-keep-best": "cemssl.keep_best=false",
    "--fk-loss-weight": "cemssl.fk_loss_weight",
    "--fk-loss-targets": "cemssl.fk_loss_targets",
    "--lr-warmup": "cemssl.lr_warmup",
    "--weight-decay": "cemssl.weight_decay",
    "--cemssl-bf16-fraction": "cemssl.bf16_fraction",
    "--residual-stage": "residual.stage",
    "--residual-scale": "residual.scale",
    "--residual-steps": "residual.steps",
    "--residual-lr": "residual.lr",
    "--residual-minutes": "residual.max_seconds (seconds)",
    "--batch-size": "KIND.batch_size or cemssl.training_batch",
    "--adam-eps": "KIND.adam_eps",
    "--lr": "KIND.lr",
    "--lr-final": "KIND.lr_final",
    "--eval-every": "KIND.eval_every",
    "--max-minutes": "KIND.max_seconds (seconds)",
}


class _RemovedFlag(argparse.Action):
    """A `train` flag that recipes replaced: refused with the `--set` key to use instead."""

    def __init__(self, option_strings, dest, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS)

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        parser.error(f"{option_string} was replaced by training recipes: use --set {_REMOVED_TRAIN_FLAGS[option_string]}=VALUE with --recipe (see cemssl_ik/recipes/)")


def _cmd_train(args: argparse.Namespace) -> int:
    import shlex

    import torch
    import yaml

    from .evaluation.evaluate import evaluate_model
    from .kinematics import load_robot
    from .learning.pipeline import FINAL_FIGURES, TrainOptions, train_model
    from .learning.recipe import apply_overrides, load_recipe

    recipe = apply_overrides(load_recipe(args.recipe), args.set)
    if args.show:
        print(yaml.safe_dump(recipe.to_dict(), sort_keys=False), end="")
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError("--device cuda requested but torch sees no CUDA device")
    # Flush subnormals for the whole process, before torch's first parallel region starts its
    # worker threads: they inherit the setting from this thread, while the trainers' own
    # flush_denormals() reaches only the calling thread (see learning.schedule).
    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    chain = load_robot(recipe.robot, recipe.base_link, recipe.tip_link)

    def evaluate(model, arm=None) -> dict:
        """The final model's figures for its record: precision and, on UR arms, class coverage / MMD,
        on the recipe's robot or on the arm a phase adapted the model to."""
        rep = evaluate_model(model, arm or chain, num_targets=1000, seed=recipe.seed).to_dict()
        return {k: rep[k] for k in FINAL_FIGURES if rep.get(k) is not None}

    out = args.output or f"out/{recipe.name}"
    options = TrainOptions(out=out, device=args.device, resume=args.resume, command="cemssl-ik " + shlex.join(sys.argv[1:]), evaluate=evaluate)

    from tqdm import tqdm

    bar: list = [None, None]  # current phase, its progress bar

    def report(phase: str, info: dict) -> None:
        if bar[0] != phase:
            if bar[1] is not None:
                bar[1].close()
            total = info.get("iterations") or info.get("steps")
            bar[:] = [phase, tqdm(total=total, desc=phase, unit="it" if phase == "cemssl" else "step", file=sys.stderr, dynamic_ncols=True, mininterval=1.0)]
        b = bar[1]
        if phase == "cemssl":
            b.set_postfix(sampled_mm=f"{info['sampled_error_mean'] * 1e3:.3f}", lr=f"{info['lr']:.1e}", refresh=False)
        else:
            b.set_postfix(loss=f"{info.get('loss', float('nan')):.3e}", refresh=False)
        # update() redraws at most once per mininterval (a redraw per step floods a log file)
        b.update(info.get("iteration", info.get("step", 0)) - b.n)
        if info.get("eval_error_mean") is not None:
            tqdm.write(f"[{phase}] {b.n}/{b.total}: held-out mean position error {info['eval_error_mean'] * 1e3:.4f} mm", file=sys.stderr)

    result = train_model(chain, recipe, options, report)
    if bar[1] is not None:
        bar[1].close()
    final = result.summary
    print(f"saved {result.path} (and {result.path.with_suffix('.json').name}); trained by {final['trained_by']}; {final['wall_seconds'] / 60:.1f} min")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import evaluate_model
    from .models import load_model

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

    from .evaluation.precision import member_errors
    from .learning.targets import sample_targets
    from .models import load_model, save_checkpoint, select_members
    from .seeds import SELECTION_SEED_OFFSET

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


def _cmd_bench_sampling(args: argparse.Namespace) -> int:
    import torch

    from .evaluation.bench_sampling import run_sampling_benchmark
    from .kinematics import load_robot
    from .models import ModelConfig, load_model, new_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        loaded = load_model(args.model)
        model, chain = loaded.model, loaded.chain
    else:
        chain = load_robot(args.robot)
        model = new_model(chain, ModelConfig(members=6))  # paper 000 Table I network, untrained: timing only
    rows = run_sampling_benchmark(model, chain, args.samples, args.inference_batch)
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
    else:
        base = rows[0]["total_seconds"]
        print(f"| strategy | inference [s] | forward model [s] | total [s] | speed-up | ({args.samples} samples, {chain.name})")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['strategy']} | {r['inference_seconds']:.3f} | {r['forward_seconds']:.3f} | {r['total_seconds']:.3f} | {base / r['total_seconds']:.1f}x |")
    return 0


def _cmd_solve(args: argparse.Namespace) -> int:
    import torch

    from .kinematics import quaternion_to_matrix
    from .models import load_model
    from .solver import IKSolver, SolverOptions

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


def _cmd_bench_service(args: argparse.Namespace) -> int:
    from .evaluation.bench_service import run_service_benchmark

    rows = run_service_benchmark(args.model, tuple(args.k), tuple(args.clients), args.requests, args.position_only, progress=not args.json, server_params=tuple(args.server_param))
    if args.json:
        print(json.dumps({"model": args.model, "server_params": args.server_param, "rows": rows}, indent=2))
    else:
        print(f"| K | clients | requests | failures | p50 [ms] | p99 [ms] | requests/s | solutions/request |  (model {args.model})")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['k']} | {r['clients']} | {r['requests']} | {r['failures']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['requests_per_second']:.1f} | {r['mean_solutions']:.1f} |")
    return 0 if all(r["failures"] == 0 for r in rows) else 1


def _adaptation_key(record: dict) -> tuple:
    """The settings a record of ``bench adaptation`` was measured with (a rerun replaces it)."""
    return tuple(record.get(k) for k in ("link_change_cm", "strategy", "noise_mm", "model", "seed"))


def _adaptation_records(path) -> list[dict]:
    """The records already in ``path`` (none if it does not exist); a file that is not a list of records is refused."""
    if not path.is_file():
        return []
    if path.stat().st_size > 1 << 20:
        raise CLIError(f"{path}: larger than 1 MiB; not a records file of bench adaptation")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise CLIError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise CLIError(f"{path}: not a list of bench adaptation records")
    return data


def _cmd_bench_adaptation(args: argparse.Namespace) -> int:
    from .evaluation.bench_adaptation import run_adaptation

    for name, values in (("--changes", args.changes), ("--noise", args.noise)):
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise CLIError(f"{name} takes finite values >= 0")
    if args.moves < 7 or not (math.isfinite(args.minutes) and args.minutes > 0):
        raise CLIError("--moves must be >= 7 and --minutes > 0")
    from pathlib import Path

    out = Path(args.out) if args.out else None
    kept = _adaptation_records(out) if out is not None else []
    records: list[dict] = []
    for change in args.changes:
        for strategy in args.strategies:
            for noise in args.noise:
                print(f"== +{change:g} cm on every link, {strategy}, noise {noise:g} mm ({args.moves} moves, {args.minutes:g} min) ==", file=sys.stderr)
                rec = run_adaptation(change, strategy, noise, args.moves, args.minutes, model_name=args.model, seed=args.seed, progress=lambda m: print("  " + m, file=sys.stderr))
                records.append(rec.to_dict())
                print(f"  error on the true arm: model alone {rec.error_before_mm:.3f} -> {rec.error_after_mm:.4f} mm, refined answers {rec.refined_error_mm:.2e} mm; {rec.robot_moves} moves, {rec.minutes:.1f} min", file=sys.stderr)
                if out is not None:  # written after every run: a long sweep loses nothing
                    out.parent.mkdir(parents=True, exist_ok=True)
                    tmp = out.with_suffix(".tmp")
                    mine = {_adaptation_key(r) for r in records}
                    tmp.write_text(json.dumps([r for r in kept if _adaptation_key(r) not in mine] + records, indent=2) + "\n")
                    tmp.replace(out)
    print(json.dumps(records, indent=2))
    return 0


def _cmd_bench_report(args: argparse.Namespace) -> int:
    import torch

    from .evaluation.report import run_report, summary_rows

    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or ("out/report_quick" if args.quick else "docs")
    if args.render_only:
        from .evaluation.report import rerender

        print(f"wrote {rerender(out)}")
        return 0
    sections = [s.strip() for s in args.sections.split(",") if s.strip()] if args.sections else None
    # the command line as typed (also under `python -m cemssl_ik.cli`); called as a library, the flags that shape the run
    typed = sys.argv[1:3] == ["bench", "report"]
    command = "cemssl-ik " + " ".join(sys.argv[1:]) if typed else "cemssl-ik bench report" + (" --quick" if args.quick else "")
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    if args.update and not sections:
        print("--update needs --sections (which sections to rerun)", file=sys.stderr)
        return 2
    report = run_report(out, "quick" if args.quick else "full", sections, seed=args.seed, command=command, log=log, update=args.update)
    if args.json:
        print(json.dumps(report, indent=1, default=float))
        return 1 if report["failed_sections"] else 0
    print(f"\nwrote {out}/RESULTS.md and {out}/results/ ({report['total_seconds'] / 60:.1f} min)")
    print("| what | result |\n|---|---|")
    for what, fig in summary_rows(report):
        print(f"| {what} | {fig} |")
    return 1 if report["failed_sections"] else 0


def _cmd_bench_solver(args: argparse.Namespace) -> int:
    import torch

    from .evaluation.bench_solver import run_solver_benchmark
    from .models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, "ur3").model  # the benchmark's targets and peers are the UR3's
    r = run_solver_benchmark(model, args.targets, args.k, args.batch, seed=args.seed, random_fraction=args.random_fraction, oversample=args.oversample, backend=args.backend)
    if args.hard_sets:
        from .evaluation.bench_solver import format_hard_target_table, run_hard_target_benchmark

        r["hard_sets"] = run_hard_target_benchmark(model, args.hard_targets, args.k, args.batch, seed=args.seed, backend=args.backend)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    o = r["ours"]
    print(f"UR3 full-pose targets: {r['num_targets']}, K = {r['k']}, model {args.model}")
    print("| solver | solutions / target | within 1e-3 mm & 1e-3 deg | analytic-set coverage | solutions / s | latency p50 [ms] |")
    print("|---|---|---|---|---|---|")
    print(f"| cemssl_ik (refined) | {o['solutions_per_target']:.2f} | {o['precise_fraction'] * 100:.3f} % | {o['analytic_coverage_mean'] * 100:.1f} % (all: {o['targets_with_full_coverage'] * 100:.1f} % of targets) | {o['solutions_per_second']:,.0f} | K=1: {o['latency_k1_p50_ms']:.2f}, K=16: {o['latency_k16_p50_ms']:.2f} (thread CPU {o['latency_k16_cpu_p50_ms']:.2f}) |")
    if r.get("analytic"):
        a = r["analytic"]
        print(f"| ur-analytic-ik | {a['solutions_per_target']:.2f} | 100 % (closed form) | 100 % | {a['solutions_per_second']:,.0f} | {a['us_per_pose'] / 1e3:.3f} |")
    if r.get("trac_ik"):
        t = r["trac_ik"]
        print(f"| TRAC-IK (pytracik, 5 ms) | {t['solutions_per_target']:.3f} | {t['precise_fraction'] * 100:.1f} % | - | {t['solutions_per_second']:,.0f} | {t['latency_p50_ms']:.3f} |")
    if args.hard_sets:
        print(f"\nNear-singular targets ({args.hard_targets} per set, margin 1e-3 rad / 1 mm; see evaluation/hard_targets.py):")
        print(format_hard_target_table(r["hard_sets"], args.k))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="cemssl-ik", description="Multi-solution learned inverse kinematics (CEMSSL).")
    sub = parser.add_subparsers(dest="command", required=True)

    fk = sub.add_parser("fk", help="forward kinematics of one joint configuration")
    fk.add_argument("--robot", default="ur3", help="ur3, planarN, artificialN or a URDF path (default ur3)")
    fk.add_argument("--base", default=None, help="base link (default: the robot's, base_link for ur3)")
    fk.add_argument("--tip", default=None, help="tip link (default: the robot's, tool0 for ur3)")
    fk.add_argument("--json", action="store_true", help="print JSON")
    fk.add_argument("joints", nargs="+", type=float, help="joint values in chain order (rad or m)")
    fk.set_defaults(func=_cmd_fk)

    ik = sub.add_parser("ik-analytic", help="all closed-form UR3 solutions of a tool0 pose")
    ik.add_argument("--robot", default="ur3", help="only ur3")
    ik.add_argument("--frame", default="base_link", choices=["base_link", "base"], help="frame of the pose (default base_link)")
    ik.add_argument("--json", action="store_true", help="print JSON")
    ik.add_argument("pose", nargs=7, type=float, metavar="X_Y_Z_QX_QY_QZ_QW", help="position (m) and unit quaternion x y z w")
    ik.set_defaults(func=_cmd_ik_analytic)

    tr = sub.add_parser("train", help="train a model by a recipe (cemssl_ik/recipes/NAME.yaml or a YAML path)")
    tr.add_argument("--recipe", required=True, help="shipped recipe name (one per shipped model, e.g. ur3_cgan) or a recipe YAML file")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one recipe field (repeatable): robot=planar3, model.hidden=[32,32], cemssl.iterations=5, phases.0.lr=1e-3")
    tr.add_argument("--output", "--out", dest="output", default=None, metavar="PATH", help="checkpoint to write: PATH.safetensors, PATH.json, PATH.curves.json (default out/RECIPE)")
    tr.add_argument("--resume", action="store_true", help="continue the recipe's CEMSSL phase from the trainer state saved at --output")
    tr.add_argument("--show", action="store_true", help="print the resolved recipe (overrides applied) and exit")
    tr.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    tr.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    for flag in _REMOVED_TRAIN_FLAGS:
        tr.add_argument(flag, action=_RemovedFlag)
    tr.set_defaults(func=_cmd_train)

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

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    bfk = bench_sub.add_parser("fk", help="FK throughput (ours vs pytorch-kinematics and ur-analytic-ik)")
    bfk.add_argument("--robot", default="ur3", choices=["ur3"], help="robot (ur3)")
    bfk.add_argument("--batches", type=int, nargs="+", default=[1, 64, 4096, 65536], help="batch sizes")
    bfk.add_argument("--min-seconds", type=float, default=0.5, help="time each cell at least this long")
    bfk.add_argument("--json", action="store_true", help="print JSON")
    bfk.set_defaults(func=_cmd_bench_fk)
    bs = bench_sub.add_parser("sampling", help="paper 003 Table III: CEMSSL data-sampling time, loop vs batch vs vectorized")
    bs.add_argument("--model", default=None, help="checkpoint (default: an untrained paper-sized UR3 ensemble)")
    bs.add_argument("--robot", default="ur3")
    bs.add_argument("--samples", type=int, default=2048)
    bs.add_argument("--inference-batch", type=int, default=512)
    bs.add_argument("--threads", type=int, default=0)
    bs.add_argument("--json", action="store_true")
    bs.set_defaults(func=_cmd_bench_sampling)
    bso = bench_sub.add_parser("solver", help="in-process IKSolver on UR3 poses vs ur-analytic-ik and TRAC-IK, same targets")
    bso.add_argument("--model", default="ur3_regression_pose")
    bso.add_argument("--targets", type=int, default=1000)
    bso.add_argument("-k", type=int, default=32)
    bso.add_argument("--batch", type=int, default=32, help="targets per solve call")
    bso.add_argument("--threads", type=int, default=0)
    bso.add_argument("--seed", type=int, default=0)
    bso.add_argument("--json", action="store_true")
    bso.add_argument("--random-fraction", type=float, default=None, help="share of uniform joint samples (SolverOptions.random_fraction; default 0.75, 0 for branch models)")
    bso.add_argument("--oversample", type=int, default=None, help="samples per requested solution in the first round (SolverOptions.oversample; default 4)")
    bso.add_argument("--backend", choices=["auto", "kernel", "torch"], default="auto", help="solver backend (compiled kernels or batched torch)")
    bso.add_argument("--hard-sets", action="store_true", help="also score ours, ur-analytic-ik and TRAC-IK on near-singular target sets (wrist, shoulder, elbow limit, stretched, random)")
    bso.add_argument("--hard-targets", type=int, default=100, help="targets per near-singular set (with --hard-sets)")
    bso.set_defaults(func=_cmd_bench_solver)
    bsv = bench_sub.add_parser("service", help="ik_service_node over DDS: p50 / p99 latency and throughput, clients in separate processes")
    bsv.add_argument("--model", default="ur3_regression_pose")
    bsv.add_argument("--k", type=int, nargs="+", default=[1, 16, 64], help="solutions per request")
    bsv.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrent client processes")
    bsv.add_argument("--requests", type=int, default=1200, help="requests per (K, clients) cell (9 cells: 10,800 in all)")
    bsv.add_argument("--position-only", action="store_true")
    bsv.add_argument("--server-param", action="append", default=[], metavar="NAME:=VALUE", help="extra ik_service_node parameter (repeatable), e.g. executor_threads:=32")
    bsv.add_argument("--json", action="store_true")
    bsv.set_defaults(func=_cmd_bench_service)
    bad = bench_sub.add_parser("adaptation", help="paper 003 Table IV analog: the learner's strategies on a simulated UR3 with longer links, errors on its true kinematics")
    bad.add_argument("--changes", type=float, nargs="+", default=[1.0, 3.0, 5.0], help="cm added to every link")
    bad.add_argument("--strategies", nargs="+", choices=["calibrate", "robot"], default=["calibrate", "robot"])
    bad.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.05], help="standard deviation of the measured tool position, mm")
    bad.add_argument("--moves", type=int, default=100, help="robot moves: of identification (calibrate), or the whole budget of black-box CEMSSL, held-out measurements included (robot)")
    bad.add_argument("--minutes", type=float, default=15.0, help="training minutes per run")
    bad.add_argument("--model", default="ur3_fkloss_position", help="position model to adapt")
    bad.add_argument("--seed", type=int, default=0)
    bad.add_argument("--out", default=None, help="JSON file of the records (e.g. docs/results/adaptation.json), rewritten after each run; its records of other settings are kept")
    bad.set_defaults(func=_cmd_bench_adaptation)
    brp = bench_sub.add_parser("report", help="every section of docs/RESULTS.md: papers' tables, diversity, peers side by side, plots")
    brp.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes): a smoke run, not figures to quote")
    brp.add_argument("--out", default=None, help="output folder for RESULTS.md and results/ (default: docs, or out/report_quick with --quick)")
    brp.add_argument("--sections", default=None, help="comma-separated subset of: ur3_position,finetune_terms,emssl,planar,artificial,ur3_pose,hard_targets,speed")
    brp.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    brp.add_argument("--seed", type=int, default=0)
    brp.add_argument("--json", action="store_true", help="print the report JSON instead of the summary table")
    brp.add_argument("--render-only", action="store_true", help="rewrite OUT/RESULTS.md from OUT/results/report.json without running anything")
    brp.add_argument("--update", action="store_true", help="rerun only --sections and merge them into OUT/results/report.json (the other sections keep their earlier run; RESULTS.md says which ran when)")
    brp.set_defaults(func=_cmd_bench_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("cemssl-ik: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError) as exc:
        print(f"cemssl-ik: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
