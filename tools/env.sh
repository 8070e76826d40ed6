# Source this file (bash) to use the project's environment in a shell:
#   source tools/env.sh
# It activates .venv, overlays the colcon install space and keeps DDS traffic on loopback.
_cemssl_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$_cemssl_root/install/setup.bash" ]; then
  echo "tools/env.sh: run 'make setup' first" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_cemssl_root/.venv/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# colcon's setup scripts reference unset variables; keep them out of `set -u` shells.
case $- in *u*) set +u; source "$_cemssl_root/install/setup.bash"; set -u ;; *) source "$_cemssl_root/install/setup.bash" ;; esac
# console scripts of the colcon (symlink) install: cemssl-ik and the node executables
export PATH="$_cemssl_root/install/cemssl_ik/lib/cemssl_ik:$PATH"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ($$ % 100) + 1 ))}"
unset _cemssl_root
