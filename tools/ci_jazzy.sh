#!/usr/bin/env bash
# The ROS-facing tests on the ROS 2 Jazzy wheels (the default set-up uses Kilted's), in a scratch
# clone of this checkout so that the main environment stays as it is. Used by .ci/run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/cemssl-jazzy.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
git clone -q "$ROOT" "$SCRATCH/repo"
cd "$SCRATCH/repo"
ROS_DISTRO=jazzy bash tools/setup.sh
# shellcheck disable=SC1091
source tools/env.sh
# compile the solver kernels once (numba caches them) before nodes that wait for them are started
python -c "from cemssl_ik.kinematics import load_robot; from cemssl_ik.models import load_checkpoint; from cemssl_ik.solver import IKSolver; c = load_robot('ur3'); IKSolver(load_checkpoint('ur3_regression_pose', c)[0], c).warmup()"
cd cemssl_ik
python -m pytest -q -ra -p no:cacheprovider --timeout=900 test/test_launch_files.py test/test_ros_analytic_service.py test/test_ros_ik_service.py test/test_ros_ik_service_fuzz.py
