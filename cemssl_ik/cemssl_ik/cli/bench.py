"""``cemssl-ik bench``: FK throughput, CEMSSL data sampling, the in-process solver, the ROS service,
adaptation to a changed arm, and the whole results report."""

from __future__ import annotations

import argparse
import json
import math
import sys

from .common import CLIError


def _cmd_bench_fk(args: argparse.Namespace) -> int:
    from ..evaluation.bench_fk import format_fk_table, run_fk_benchmark

    rows = run_fk_benchmark(robot=args.robot, batches=args.batches, min_seconds=args.min_seconds, progress=not args.json)
    if args.json:
        print(json.dumps({"robot": args.robot, "rows": rows}, indent=2))
    else:
        print(format_fk_table(rows))
    return 0


def _cmd_bench_sampling(args: argparse.Namespace) -> int:
    import torch

    from ..evaluation.bench_sampling import run_sampling_benchmark
    from ..kinematics import load_robot
    from ..models import ModelConfig, load_model, new_model

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


def _cmd_bench_solver(args: argparse.Namespace) -> int:
    import torch

    from ..evaluation.bench_solver import run_solver_benchmark
    from ..models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, "ur3").model  # the benchmark's targets and peers are the UR3's
    r = run_solver_benchmark(model, args.targets, args.k, args.batch, seed=args.seed, random_fraction=args.random_fraction, oversample=args.oversample, backend=args.backend)
    if args.hard_sets:
        from ..evaluation.bench_solver import format_hard_target_table, run_hard_target_benchmark

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


def _cmd_bench_service(args: argparse.Namespace) -> int:
    from ..evaluation.bench_service import run_service_benchmark

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
    from ..evaluation.bench_adaptation import run_adaptation

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
                print(f"  error on the true arm: model alone {rec.error_before_mm:.3f} -> {rec.error_after_mm:.4f} mm (where the safety layer lets it go: {rec.error_before_safe_mm:.3f} -> {rec.error_after_safe_mm:.4f} mm), refined answers {rec.refined_error_mm:.2e} mm; {rec.robot_moves} moves, {rec.minutes:.1f} min", file=sys.stderr)
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

    from ..evaluation.report import run_report, summary_rows

    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or ("out/report_quick" if args.quick else "docs")
    if args.render_only:
        from ..evaluation.report import rerender

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


def _add_fk(bench_sub: argparse._SubParsersAction) -> None:
    """``bench fk``."""
    bfk = bench_sub.add_parser("fk", help="FK throughput (ours vs pytorch-kinematics and ur-analytic-ik)")
    bfk.add_argument("--robot", default="ur3", choices=["ur3"], help="robot (ur3)")
    bfk.add_argument("--batches", type=int, nargs="+", default=[1, 64, 4096, 65536], help="batch sizes")
    bfk.add_argument("--min-seconds", type=float, default=0.5, help="time each cell at least this long")
    bfk.add_argument("--json", action="store_true", help="print JSON")
    bfk.set_defaults(func=_cmd_bench_fk)


def _add_sampling(bench_sub: argparse._SubParsersAction) -> None:
    """``bench sampling``."""
    bs = bench_sub.add_parser("sampling", help="paper 003 Table III: CEMSSL data-sampling time, loop vs batch vs vectorized")
    bs.add_argument("--model", default=None, help="checkpoint (default: an untrained paper-sized UR3 ensemble)")
    bs.add_argument("--robot", default="ur3")
    bs.add_argument("--samples", type=int, default=2048)
    bs.add_argument("--inference-batch", type=int, default=512)
    bs.add_argument("--threads", type=int, default=0)
    bs.add_argument("--json", action="store_true")
    bs.set_defaults(func=_cmd_bench_sampling)


def _add_solver(bench_sub: argparse._SubParsersAction) -> None:
    """``bench solver``."""
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


def _add_service(bench_sub: argparse._SubParsersAction) -> None:
    """``bench service``."""
    bsv = bench_sub.add_parser("service", help="ik_service_node over DDS: p50 / p99 latency and throughput, clients in separate processes")
    bsv.add_argument("--model", default="ur3_regression_pose")
    bsv.add_argument("--k", type=int, nargs="+", default=[1, 16, 64], help="solutions per request")
    bsv.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrent client processes")
    bsv.add_argument("--requests", type=int, default=1200, help="requests per (K, clients) cell (9 cells: 10,800 in all)")
    bsv.add_argument("--position-only", action="store_true")
    bsv.add_argument("--server-param", action="append", default=[], metavar="NAME:=VALUE", help="extra ik_service_node parameter (repeatable), e.g. executor_threads:=32")
    bsv.add_argument("--json", action="store_true")
    bsv.set_defaults(func=_cmd_bench_service)


def _add_adaptation(bench_sub: argparse._SubParsersAction) -> None:
    """``bench adaptation``."""
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


def _add_report(bench_sub: argparse._SubParsersAction) -> None:
    """``bench report``."""
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


def register(sub: argparse._SubParsersAction) -> None:
    """The ``bench`` subcommand and its benchmarks."""
    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    for add in (_add_fk, _add_sampling, _add_solver, _add_service, _add_adaptation, _add_report):
        add(bench_sub)

