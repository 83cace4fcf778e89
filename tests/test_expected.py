"""Differentiable expected latency: equals the Monte-Carlo mean of predict; gradient matches finite differences."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hwnas
from hwnas.latency import LatencyPredictor
from hwnas.space import get_space

from conftest import random_table


@pytest.fixture(scope="module")
def predictor():
    space = get_space("tiny-mbv3")
    return LatencyPredictor(space, random_table(space, seed=11, calibration=(1.1, 0.2)))


def random_probs(space, rng, batch=None, mask=None):
    shape = () if batch is None else (batch,)
    def dirichlet(*dims):
        return torch.from_numpy(rng.dirichlet(np.ones(dims[-1]) * 0.7, size=shape + dims[:-1]))
    probs = {"ks": dirichlet(space.num_blocks, len(space.ks)), "e": dirichlet(space.num_blocks, len(space.expand)),
             "d": dirichlet(space.num_stages, len(space.depth)), "r": dirichlet(len(space.resolutions))}
    if mask is not None:
        probs["r"] = probs["r"] * torch.from_numpy(mask)
        probs["r"] = probs["r"] / probs["r"].sum(-1, keepdim=True)
    return probs


def sample_codes(space, probs, n, rng):
    """Draw archs from independent categoricals (the distribution ``expected`` integrates over)."""
    cols = []
    for group, count in (("ks", space.num_blocks), ("e", space.num_blocks), ("d", space.num_stages)):
        p = probs[group].numpy()
        cols += [rng.choice(p.shape[-1], size=n, p=p[i]) for i in range(count)]
    cols.append(rng.choice(len(space.resolutions), size=n, p=probs["r"].numpy()))
    return np.stack(cols, axis=1).astype(np.int32)


def test_expected_equals_monte_carlo_mean(predictor):
    space = predictor.space
    rng = np.random.default_rng(0)
    for _ in range(3):
        probs = random_probs(space, rng)
        exact = float(hwnas.expected_latency(predictor, probs))
        samples = predictor.predict(sample_codes(space, probs, 400_000, rng))
        stderr = samples.std() / np.sqrt(len(samples))
        assert abs(exact - samples.mean()) < 5 * stderr


def test_point_mass_equals_predict(predictor):
    space = predictor.space
    arch = space.sample(np.random.default_rng(3))
    codes = space.encode(arch)[0]
    B, G = space.num_blocks, space.num_stages
    eye = lambda idx, n: torch.nn.functional.one_hot(torch.as_tensor(idx, dtype=torch.long), n).double()  # noqa: E731
    probs = {"ks": eye(codes[:B], 3), "e": eye(codes[B:2 * B], 3), "d": eye(codes[2 * B:2 * B + G], 3),
             "r": eye(codes[-1], 3)}
    assert float(hwnas.expected_latency(predictor, probs)) == pytest.approx(predictor.predict_one(arch), rel=1e-12)


def test_gradient_matches_finite_differences(predictor):
    space = predictor.space
    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(*shape, dtype=torch.float64, generator=gen, requires_grad=True)
              for shape in ((2, space.num_blocks, 3), (2, space.num_blocks, 3), (2, space.num_stages, 3), (2, 3))]

    def f(ks, e, d, r):
        probs = {"ks": ks.softmax(-1), "e": e.softmax(-1), "d": d.softmax(-1), "r": r.softmax(-1)}
        return hwnas.expected_latency(predictor, probs)

    assert torch.autograd.gradcheck(f, logits, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_latency_gradient_reaches_logits_and_points_to_smaller_choices(predictor):
    space = predictor.space
    logits = {g: torch.zeros(*s, requires_grad=True) for g, s in
              (("ks", (space.num_blocks, 3)), ("e", (space.num_blocks, 3)), ("d", (space.num_stages, 3)), ("r", (3,)))}
    value = hwnas.expected_latency(predictor, {g: t.softmax(-1) for g, t in logits.items()})
    value.backward()
    for group, tensor in logits.items():
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0, group
    # more resolution is more latency: the gradient pushes the largest resolution's logit down hardest
    assert logits["r"].grad[-1] > 0 > logits["r"].grad[0]


def test_unserved_resolution_mass_is_refused():
    space = get_space("tiny-mbv3")
    predictor = LatencyPredictor(space, random_table(space, resolutions=[24, 40], seed=12))
    rng = np.random.default_rng(1)
    ok = random_probs(space, rng, mask=predictor.resolution_mask.astype(float))
    hwnas.expected_latency(predictor, ok)
    with pytest.raises(ValueError, match="resolution 32"):
        hwnas.expected_latency(predictor, random_probs(space, rng))


def test_batched_matches_unbatched_and_validates(predictor):
    space = predictor.space
    rng = np.random.default_rng(5)
    batch = random_probs(space, rng, batch=6)
    values = hwnas.expected_latency(predictor, batch)
    assert values.shape == (6,)
    for i in range(6):
        single = {g: t[i] for g, t in batch.items()}
        assert float(hwnas.expected_latency(predictor, single)) == pytest.approx(float(values[i]), rel=1e-12)
    broken = {**batch, "ks": batch["ks"] * 2}
    with pytest.raises(ValueError, match=r"ks\[0\]"):
        hwnas.expected_latency(predictor, broken)
    with pytest.raises(ValueError, match="missing"):
        hwnas.expected_latency(predictor, {"ks": batch["ks"]})
