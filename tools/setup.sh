#!/usr/bin/env bash
# Idempotent set-up of the development environment:
#   .venv/                 virtual environment with the pinned requirements (torch CPU, ROS 2 wheels, colcon)
#   build/ install/ log/   colcon workspace holding cemssl_ik_interfaces and cemssl_ik
# ROS_DISTRO picks the ROS 2 wheels: kilted (default) or jazzy (requirements/ros-$ROS_DISTRO.txt).
# Re-running it re-installs only when the requirements changed, rebuilds everything when the distro
# changed, and otherwise rebuilds incrementally.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*"; }

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  echo "[setup] error: Python >= 3.10 is required (found: $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.X" >&2
  exit 1
fi

DISTRO="${ROS_DISTRO:-kilted}"
ROS_REQUIREMENTS="requirements/ros-$DISTRO.txt"
if [ ! -f "$ROS_REQUIREMENTS" ]; then
  echo "[setup] error: ROS_DISTRO=$DISTRO: make setup installs the ROS 2 wheels of kilted (default) or jazzy;" \
    "on a ROS 2 $DISTRO install, build the packages with colcon instead (docs/ros2.md, 'Install')" >&2
  exit 1
fi
# the two distros' wheels cannot share a virtual environment, nor their builds a colcon workspace
if [ -f "$VENV/.ros_distro" ] && [ "$(cat "$VENV/.ros_distro")" != "$DISTRO" ]; then
  log "switching from ROS 2 $(cat "$VENV/.ros_distro") to $DISTRO: new virtual environment and build"
  rm -rf "$VENV" build install log
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
echo "$DISTRO" > "$VENV/.ros_distro"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

stamp="$VENV/.requirements.sha256"
want="$(cat requirements.txt requirements/runtime.txt "$ROS_REQUIREMENTS" | sha256sum | cut -d' ' -f1) $DISTRO"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  log "installing pinned requirements with the ROS 2 $DISTRO wheels (first run: a few minutes)"
  "${PIP[@]}" install -q "setuptools==79.0.1" wheel
  "${PIP[@]}" install -q -r requirements.txt -r "$ROS_REQUIREMENTS"
  echo "$want" > "$stamp"
else
  log "requirements up to date (ROS 2 $DISTRO)"
fi

# The ROS message wheels bake their build machine's Python include paths into exported CMake files.
"$VENV/bin/python" tools/fix_ros_wheels.py

log "building cemssl_ik_interfaces and cemssl_ik with colcon"
(
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  colcon --log-base log build --symlink-install --base-paths cemssl_ik cemssl_ik_interfaces \
    --event-handlers console_cohesion- summary+ status- 2>&1 | grep -v "doesn't contain any 'local_setup.\*' files" || exit "${PIPESTATUS[0]}"
)
log "done: source tools/env.sh to use the environment (cemssl-ik on PATH)"
