"""Offsets added to a run's seed to draw independent random streams, all in one place.

A run seeded ``s`` trains on draws from ``s`` itself; held-out targets and other streams use
``s + OFFSET`` with the distinct offsets below, so they never coincide with training draws or with
one another.  The values are arbitrary (primes) but fixed: changing one changes every recorded
evaluation figure.
"""

__all__ = ["EVAL_SEED_OFFSET", "SELECTION_SEED_OFFSET", "VALIDATION_SEED_OFFSET", "VALIDATION_SAMPLING_SEED_OFFSET", "ADAPTATION_TARGETS_SEED_OFFSET"]

#: held-out evaluation targets (``evaluate_precision``, ``cemssl-ik eval``, the report)
EVAL_SEED_OFFSET = 1_000_003
#: targets for choosing among ensemble members (``cemssl-ik prune``)
SELECTION_SEED_OFFSET = 2_000_029
#: held-out targets a trainer watches while it trains (``eval_every``, keep-best, weight averaging)
VALIDATION_SEED_OFFSET = 7919
#: the model's sampling noise in a trainer's held-out evaluation
VALIDATION_SAMPLING_SEED_OFFSET = 1
#: targets on the true arm in the adaptation benchmark
ADAPTATION_TARGETS_SEED_OFFSET = 104_729
