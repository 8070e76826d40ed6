#!/usr/bin/env bash
# Idempotent set-up of the development environment:
#   .venv/                 virtual environment with the pinned requirements (torch CPU, ROS 2 wheels, colcon)
#   build/ install/ log/   colcon workspace holding cemssl_ik_interfaces and cemssl_ik
# Re-running it re-installs only when requirements.txt changed, and rebuilds incrementally.
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

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

stamp="$VENV/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  log "installing pinned requirements (first run: a few minutes)"
  "${PIP[@]}" install -q "setuptools==79.0.1" wheel
  "${PIP[@]}" install -q -r requirements.txt
  echo "$want" > "$stamp"
else
  log "requirements up to date"
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
