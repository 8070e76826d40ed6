"""Evaluation: metrics, peer solvers, benchmarks and reports."""

from .bench_fk import format_fk_table, run_fk_benchmark

__all__ = ["format_fk_table", "run_fk_benchmark"]
