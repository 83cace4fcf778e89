"""The trained-alone baseline: it learns, and a killed one resumes to the run it would have been."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hwnas.data.datasets import ImageDataset
from hwnas.space import get_space
from hwnas.train import Preprocessing, train_standalone

STEPS = 10


@pytest.fixture(scope="module")
def space():
    return get_space("tiny-mbv3")


@pytest.fixture(scope="module")
def data():
    """96 images whose class shows in their red channel, so a few steps can learn it."""
    rng = np.random.default_rng(0)
    labels = np.arange(96) % 4
    images = rng.integers(0, 96, (96, 32, 32, 3)).astype(np.uint8)
    images[..., 0] += (labels * 50).astype(np.uint8)[:, None, None]
    return ImageDataset(images, labels.astype(np.int64), ("a", "b", "c", "d"), name="toy")


PRE = Preprocessing(mean=(0.4, 0.4, 0.4), std=(0.25, 0.25, 0.25))


def _train(space, data, **kwargs):
    arch = space.min_arch()
    options = {"steps": STEPS, "lr": 0.05, "batch_size": 16, "warmup_steps": 2, "seed": 1, "show_progress": False}
    return train_standalone(space, arch, data, PRE, **{**options, **kwargs})


@pytest.fixture(scope="module")
def straight(space, data):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run outside conftest's per-test one_thread
    try:
        return _train(space, data)
    finally:
        torch.set_num_threads(threads)


def test_the_baseline_learns_the_toy_task(straight):
    assert straight.finished and straight.steps == STEPS and straight.segments == 1
    assert not straight.subnet.training
    assert np.mean(straight.losses[-3:]) < 0.8 * np.mean(straight.losses[:3])


@pytest.mark.parametrize("stop", [4, 7])
def test_a_killed_baseline_resumes_to_the_uninterrupted_run(straight, space, data, tmp_path, stop):
    """Stopped on a periodic checkpoint (4) and between two (7: the stop writes its own)."""
    folder = tmp_path / "alone"
    first = _train(space, data, checkpoint_dir=folder, checkpoint_every=4, max_steps=stop)
    assert not first.finished and first.steps == stop
    resumed = _train(space, data, checkpoint_dir=folder, checkpoint_every=4)
    assert resumed.finished and resumed.steps == STEPS and resumed.segments == 2
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-6, atol=1e-7)
    for (name, a), b in zip(straight.subnet.state_dict().items(), resumed.subnet.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    again = _train(space, data, checkpoint_dir=folder, checkpoint_every=4)  # finished: nothing left to train
    assert again.finished and again.segments == 2 and again.losses == resumed.losses


def test_another_recipe_does_not_resume_from_the_checkpoint(space, data, tmp_path):
    _train(space, data, checkpoint_dir=tmp_path, max_steps=2)
    with pytest.raises(ValueError, match=r"another baseline's checkpoint \(lr: checkpoint 0.05, now 0.1\)"):
        _train(space, data, checkpoint_dir=tmp_path, lr=0.1)
    with pytest.raises(ValueError, match="checkpoint_every=0"):
        _train(space, data, checkpoint_dir=tmp_path, checkpoint_every=0)
