"""IKSolver: refinement to machine precision, distinctness, seed ordering, 2*pi copies within limits."""

from __future__ import annotations

import math

import pytest
import torch
from cemssl_ik.kinematics import load_robot, rotation_angle
from cemssl_ik.solver import IKSolver, SolverOptions, refine

from cemssl_ik.models import ModelConfig, new_model


@pytest.fixture(scope="module")
def chain():
    return load_robot("ur3")


@pytest.fixture(scope="module", params=["kernel", "torch"])
def solver(chain, request):
    # An untrained ensemble is a broad sampler: refinement does the rest, which is what this tests.
    # Every solver test runs on both backends: compiled per-sample kernels and batched torch ops.
    torch.manual_seed(0)
    model = new_model(chain, ModelConfig(latent_dim=6, members=3, hidden=(64, 64), output="biternion"))
    s = IKSolver(model, chain, backend=request.param)
    assert s.backend == request.param
    return s


def _targets(chain, n, seed):
    q = chain.sample_configurations(n, torch.Generator().manual_seed(seed))
    return q, chain.forward(q)


def test_refinement_reaches_machine_precision_position_and_pose(chain):
    q_true, fk = _targets(chain, 300, 1)
    start = q_true + 0.05 * torch.randn(q_true.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    q_pos = refine(chain, start, fk.position, None, iterations=30, damping=1e-9)
    assert (chain.forward(q_pos).position - fk.position).norm(dim=-1).max() <= 1e-9
    q_pose = refine(chain, start, fk.position, fk.rotation, iterations=30, damping=1e-9)
    out = chain.forward(q_pose)
    assert (out.position - fk.position).norm(dim=-1).max() <= 1e-9
    assert rotation_angle(out.rotation, fk.rotation).max() <= 1e-9
    # the refined solution stays in the branch it started from: near the generating configuration
    # (except rare near-singular samples, where wrist joints can trade angle along the singular set)
    assert ((q_pose - q_true).abs().amax(-1) < 0.2).double().mean() >= 0.99


def test_position_solutions_are_valid_distinct_and_in_limits(chain, solver):
    _, fk = _targets(chain, 20, 3)
    opts = SolverOptions(num_solutions=8, distinct_tolerance=0.05)
    res = solver.solve(fk.position, options=opts)
    assert res.solutions.shape == (20, 8, 6) and res.valid.shape == (20, 8)
    assert res.valid.all(), res.num_valid
    assert res.position_error.max() <= 1e-6
    reached = chain.forward(res.solutions).position
    assert (reached - fk.position[:, None]).norm(dim=-1).max() <= 1e-6
    assert chain.within_limits(res.solutions).all()
    for b in range(20):
        q = res.solutions[b]
        d = torch.remainder(q[:, None] - q[None] + math.pi, 2 * math.pi) - math.pi
        dist = d.abs().amax(-1) + torch.eye(8, dtype=torch.float64) * 10
        assert dist.min() > opts.distinct_tolerance
    assert ((res.branch >= 0) & (res.branch < 8)).all()


def test_pose_solutions_reach_the_pose(chain, solver):
    _, fk = _targets(chain, 10, 4)
    res = solver.solve(fk.position, fk.rotation, options=SolverOptions(num_solutions=4, oversample=8))
    assert res.valid.any(1).all()
    sol = res.solutions[res.valid]
    out = chain.forward(sol)
    idx = torch.nonzero(res.valid)[:, 0]
    assert (out.position - fk.position[idx]).norm(dim=-1).max() <= 1e-6
    assert rotation_angle(out.rotation, fk.rotation[idx]).max() <= 1e-5


def test_seed_orders_solutions_and_picks_nearest_copies(chain, solver):
    _, fk = _targets(chain, 5, 5)
    seed = torch.tensor([1.0, -2.0, 1.5, -4.0, 5.0, -5.5], dtype=torch.float64)
    res = solver.solve(fk.position, seed=seed, options=SolverOptions(num_solutions=6))
    assert res.valid.all()
    d = (res.solutions - seed).norm(dim=-1)
    assert (d[:, 1:] >= d[:, :-1] - 1e-12).all()
    # every revolute joint is the copy nearest the seed that is inside the limits
    for shift in (-2 * math.pi, 2 * math.pi):
        alt = res.solutions.clone()
        alt[..., 3] += shift
        closer = (alt[..., 3] - seed[3]).abs() < (res.solutions[..., 3] - seed[3]).abs()
        assert not (closer & chain.within_limits(alt)).any()
    assert chain.within_limits(res.solutions).all()


def test_fixed_shape_when_fewer_solutions_exist_and_bad_input(chain, solver):
    far = torch.tensor([[2.0, 0.0, 0.3]], dtype=torch.float64)  # out of reach
    res = solver.solve(far, options=SolverOptions(num_solutions=4, max_rounds=1))
    assert res.solutions.shape == (1, 4, 6) and not res.valid.any() and torch.isnan(res.solutions).all()
    assert res.num_valid.tolist() == [0]
    with pytest.raises(ValueError, match="finite"):
        solver.solve(torch.tensor([[math.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="num_solutions"):
        SolverOptions(num_solutions=0)


def _in_threads(fn, n: int, timeout: float) -> list[BaseException]:
    """Run fn(0) .. fn(n - 1) on n threads at once; the exceptions they raised."""
    import threading

    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            fn(i)
        except Exception as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return errors


def test_request_batcher_answers_concurrent_requests_correctly(chain, solver):
    from cemssl_ik.solver import RequestBatcher

    _, fk = _targets(chain, 24, 6)
    batcher = RequestBatcher(solver, max_batch=8)
    results = {}

    def ask(i: int) -> None:
        rot = fk.rotation[i] if i % 2 == 0 else None  # poses and positions mixed: solved in separate groups
        results[i] = batcher.solve_one(fk.position[i], rot, options=SolverOptions(num_solutions=2))

    errors = _in_threads(ask, 24, timeout=120)
    batcher.close()
    assert not errors and len(results) == 24
    assert batcher.requests == 24 and batcher.batches < 24  # some requests shared a solve call
    for i, res in results.items():
        assert res.solutions.shape == (1, 2, 6) and res.valid[0, 0]
        out = chain.forward(res.solutions[0][res.valid[0]])
        assert (out.position - fk.position[i]).norm(dim=-1).max() <= 1e-6
        if i % 2 == 0:
            assert rotation_angle(out.rotation, fk.rotation[i].expand_as(out.rotation)).max() <= 1e-5
    with pytest.raises(ValueError, match="finite"):
        b2 = RequestBatcher(solver)
        try:
            b2.solve_one(torch.tensor([math.nan, 0.0, 0.0]))
        finally:
            b2.close()


def test_request_batcher_threads_that_solve_for_each_other_never_strand_a_request(chain, solver):
    # flat combining: whichever caller holds the lock solves everybody's queued requests; many
    # short requests from many threads at once exercise the hand-over (a stranded request times out)
    from cemssl_ik.solver import RequestBatcher

    _, fk = _targets(chain, 16, 7)
    batcher = RequestBatcher(solver, max_batch=4)
    answered = []

    def ask(t: int) -> None:
        for r in range(15):
            i = (t + r) % 16
            res = batcher.solve_one(fk.position[i], None, options=SolverOptions(num_solutions=1, max_rounds=1, rescue_rounds=0), timeout=60)
            answered.append(bool(res.valid[0, 0]))

    errors = _in_threads(ask, 8, timeout=300)
    assert not errors and len(answered) == 120 and all(answered)
    assert batcher.requests == 120


def test_refine_returns_converged_input_unchanged(chain):
    # every sample already at the target: no iteration runs (this once raised an aliasing error)
    q_true, fk = _targets(chain, 8, 7)
    out = refine(chain, q_true, fk.position, fk.rotation, iterations=5, damping=1e-9)
    assert torch.equal(out, q_true) and out.data_ptr() != q_true.data_ptr()


@pytest.mark.parametrize(
    "cfg",
    [
        dict(target="pose", branches="ur3", latent_dim=0, members=1, hidden=(32, 32), activation="silu", output="biternion"),
        dict(target="position", latent_dim=3, members=3, hidden=(32, 16), activation="relu", output="sigmoid"),
        dict(target="pose", latent_dim=2, members=2, hidden=(16,), activation="tanh", output="biternion"),
        dict(target="position", latent_dim=3, members=2, hidden=(32, 16), activation="silu", output="biternion", base_symmetry=True),
        dict(target="pose", latent_dim=2, members=2, hidden=(16,), activation="relu", output="sigmoid", base_symmetry=True),
    ],
)
def test_numpy_sampler_matches_the_torch_model(chain, cfg):
    # single requests sample through numpy (no torch per-op overhead); it must be the same network
    import numpy as np
    from cemssl_ik.solver import _NumpySampler

    torch.manual_seed(3)
    model = new_model(chain, ModelConfig(**cfg)).eval()
    sampler = _NumpySampler.build(model)
    assert sampler is not None
    q_true, fk = _targets(chain, 5, 11)
    K = 11
    rot = fk.rotation if cfg["target"] == "pose" else None

    class ZeroNoise:  # the torch side gets zero noise too, so both see identical latents
        def standard_normal(self, shape, dtype):
            return np.zeros(shape, dtype=dtype)

    got = sampler.sample(fk.position.numpy(), None if rot is None else rot.numpy(), K, ZeroNoise())
    classes = model.slot_classes(K).expand(5, K) if model.num_classes else None
    z = model.with_classes(torch.zeros(5, K, model.noise_dim), classes) if model.num_classes else torch.zeros(5, K, model.noise_dim)
    want = model.sample(fk.position, rot, K, z=z).q.double()
    diff = torch.from_numpy(got) - want
    diff = torch.where(torch.as_tensor(chain.periodic), torch.remainder(diff + math.pi, 2 * math.pi) - math.pi, diff)
    assert diff.abs().max() < 1e-4
    assert _NumpySampler.build(new_model(chain, ModelConfig(method="cvae", latent_dim=2, members=1, hidden=(8,)))) is None
    assert _NumpySampler.build(new_model(chain, ModelConfig(latent_dim=2, members=1, hidden=(8,), activation="gelu"))) is None
    big = new_model(chain, ModelConfig(latent_dim=2, members=2, hidden=(1024, 512)))  # > MAX_PARAMETERS: torch
    assert _NumpySampler.build(big) is None
