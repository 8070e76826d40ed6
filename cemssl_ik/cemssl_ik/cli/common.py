"""What every ``cemssl-ik`` subcommand shares: the user-error type, the argument parser that reads
negative floats as values, and the checks of numbers typed on the command line."""

from __future__ import annotations

import argparse
import math
from typing import Sequence


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
