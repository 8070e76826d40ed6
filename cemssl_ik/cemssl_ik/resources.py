"""Where the package's data files are: URDFs, shipped models, configuration.

The bottom of the import graph: it imports nothing of the package, so every layer may use it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["find_package_file"]


def find_package_file(relative: str) -> Path:
    """Locate a data file of the cemssl_ik package (``urdf/ur3.urdf``, ``models/NAME.json``, ``config/...``).

    Looks in the source tree first (editable / development installs), then in the ament share
    directory of an installed package.

    Raises:
        FileNotFoundError: in neither place.
    """
    source = Path(__file__).resolve().parents[1] / relative
    if source.exists():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        shared = Path(get_package_share_directory("cemssl_ik")) / relative
        if shared.exists():
            return shared
    except Exception:  # ament index absent or package not installed through colcon
        pass
    raise FileNotFoundError(f"cemssl_ik data file {relative!r} not found in the source tree or the ament share directory")
