"""``cemssl-ik train``: train a model by a recipe, from scratch or from a checkpoint."""

from __future__ import annotations

import argparse
import sys

from .common import CLIError

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

    from ..evaluation.evaluate import evaluate_model
    from ..kinematics import load_robot
    from ..learning.pipeline import FINAL_FIGURES, TrainOptions, train_model
    from ..learning.recipe import apply_overrides, load_recipe

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


def register(sub: argparse._SubParsersAction) -> None:
    """The ``train`` subcommand (the flags recipes replaced are refused by name)."""
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
