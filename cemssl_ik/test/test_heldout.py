"""Trainers take their held-out evaluation as a callable; the default is the fixed held-out error."""

from __future__ import annotations

import torch
from cemssl_ik.kinematics import planar_arm
from cemssl_ik.learning import SupervisedConfig, SupervisedTrainer, UnsupervisedConfig, UnsupervisedTrainer, evaluate_precision, heldout_evaluator, sample_targets
from cemssl_ik.seeds import VALIDATION_SAMPLING_SEED_OFFSET, VALIDATION_SEED_OFFSET

from cemssl_ik.models import ModelConfig, new_model

CHAIN = planar_arm(3)


def _model():
    return new_model(CHAIN, ModelConfig(method="cemssl", latent_dim=2, members=2, hidden=(16, 16), output="biternion"))


def test_trainers_call_the_evaluator_they_are_given():
    for trainer_cls, config in ((UnsupervisedTrainer, UnsupervisedConfig(steps=4, batch_size=8, eval_every=2)), (SupervisedTrainer, SupervisedConfig(steps=4, batch_size=8, eval_every=2))):
        model, seen = _model(), []

        def evaluator(m):
            seen.append(m)
            return 0.25 + len(seen)

        trainer = trainer_cls(model, CHAIN, config, evaluator=evaluator)
        trainer.run()
        assert seen == [model, model], trainer_cls.__name__
        assert [row["eval_error_mean"] for row in trainer.history] == [1.25, 2.25]


def test_default_evaluator_is_the_fixed_held_out_error():
    model = _model()
    error = heldout_evaluator(CHAIN, seed=3, num_targets=50)
    targets = sample_targets(CHAIN, 50, torch.Generator().manual_seed(3 + VALIDATION_SEED_OFFSET))
    expected = float(evaluate_precision(model, CHAIN, targets=targets, seed=3 + VALIDATION_SAMPLING_SEED_OFFSET).position_error.mean())
    assert error(model) == expected == error(model)  # same targets and sampling noise every call
    trainer = UnsupervisedTrainer(model, CHAIN, UnsupervisedConfig(steps=1, batch_size=8, eval_every=1, seed=3))
    trainer.run()
    assert trainer.history[0]["eval_error_mean"] == heldout_evaluator(CHAIN, seed=3)(model)
