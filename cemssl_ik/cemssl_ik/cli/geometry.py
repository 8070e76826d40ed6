"""``cemssl-ik fk`` and ``cemssl-ik ik-analytic``: forward kinematics of one configuration and the
closed-form UR3 solutions of one pose."""

from __future__ import annotations

import argparse
import json

from .common import CLIError, _finite, _unit_quaternion


def _cmd_fk(args: argparse.Namespace) -> int:
    import torch

    from ..kinematics import load_robot, matrix_to_quaternion

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

    from ..kinematics import URAnalyticIK, load_robot, quaternion_to_matrix, rotation_angle

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


def register(sub: argparse._SubParsersAction) -> None:
    """The ``fk`` and ``ik-analytic`` subcommands."""
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
