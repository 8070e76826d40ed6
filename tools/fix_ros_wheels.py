"""Make the ROS 2 PyPI wheels usable for building interface packages in this virtual environment.

The message wheels export CMake targets whose include directories point at the wheel build
machine's interpreter (``/opt/python/cpXY-cpXY/...``).  CMake refuses targets with missing include
directories, so ``rosidl_generate_interfaces`` of a package depending on those messages fails.  This
script rewrites those paths to the running interpreter's Python and numpy include directories.

Idempotent: running it again changes nothing.  Run it with the virtual environment's Python.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

_BAKED_NUMPY = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include")
_BAKED_PYTHON = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")


def main() -> int:
    prefix = Path(sys.prefix)
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = 0
    for path in (prefix / "share").glob("*/cmake/*.cmake"):
        text = path.read_text()
        if "/opt/python/" not in text:
            continue
        new = _BAKED_NUMPY.sub(numpy_include, text)
        new = _BAKED_PYTHON.sub(python_include, new)
        if new != text:
            path.write_text(new)
            changed += 1
    print(f"fix_ros_wheels: rewrote {changed} CMake export file(s) under {prefix / 'share'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
