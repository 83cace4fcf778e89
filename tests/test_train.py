"""Progressive shrinking: schedules, weight-decay groups, exact resume across phase boundaries, DDP."""
from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from train_helpers import TensorLoader, ddp_worker, random_data

from hwnas.nn import OFAMobileNetV3
from hwnas.space import get_space
from hwnas.train import Phase, TrainConfig, Trainer, cosine_lr, make_schedule, param_groups
from hwnas.train.state import load_state


@pytest.fixture(scope="module")
def space():
    return get_space("tiny-mbv3")


@pytest.mark.parametrize("name", ["quick", "standard"])
def test_schedule_phases_follow_progressive_shrinking(space, name):
    phases = make_schedule(space, name)
    assert [p.name for p in phases] == ["teacher", "kernel", "depth-1", "depth-2", "expand-1", "expand-2"]
    teacher, kernel, d1, d2, e1, e2 = phases
    assert (teacher.ks, teacher.expand, teacher.depth, teacher.kd_ratio) == ((7,), (6,), (4,), 0.0)
    assert kernel.ks == space.ks and kernel.expand == (6,) and kernel.depth == (4,)
    assert d1.depth == (3, 4) and d2.depth == space.depth and d2.expand == (6,)
    assert e1.expand == (4, 6) and e1.reorganize_before and e2.expand == space.expand
    assert [p.reorganize_before for p in phases].count(True) == 1
    assert all(p.kd_ratio > 0 for p in phases[1:])
    assert all(p.subnets_per_step >= 2 for p in phases[2:])  # several subnets, gradients accumulated
    if name == "quick":
        assert sum(p.epochs for p in phases) <= 6
    rng = np.random.default_rng(0)
    for phase in phases:
        for _ in range(50):
            arch = space.validate(phase.sample(space, rng, 32))
            assert set(arch.ks) <= set(phase.ks) and set(arch.e) <= set(phase.expand) and set(arch.d) <= set(phase.depth)
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule(space, "huge")
    with pytest.raises(ValueError, match="ks \\[9\\]"):
        Phase("bad", 1, 0.1, ks=(9,), expand=(6,), depth=(4,)).check(space)
    with pytest.raises(ValueError, match="epochs=0"):
        Phase("empty", 0, 0.1, ks=(3,), expand=(6,), depth=(4,))


def test_epochs_override_keeps_everything_else_of_the_schedule(space):
    own = make_schedule(space, "standard")
    moved = make_schedule(space, "standard", (12, 3, 1, 3, 1, 16))
    assert [p.epochs for p in moved] == [12, 3, 1, 3, 1, 16]
    assert [replace(p, epochs=30) for p in moved] == [replace(p, epochs=30) for p in own]
    with pytest.raises(ValueError, match=r"give 6 numbers, one per phase \(teacher, kernel"):
        make_schedule(space, "standard", (12, 24))
    with pytest.raises(ValueError, match="-1.0 is not a positive number of epochs"):
        make_schedule(space, "standard", (12, 3, 1, -1, 1, 16))


def test_sandwich_bounds_come_first_every_step(space):
    sandwich = Phase("last", 1, 0.05, ks=space.ks, expand=space.expand, depth=space.depth, subnets_per_step=3,
                     with_largest=True, with_smallest=True)
    lower = replace(sandwich, with_largest=False)
    rng = np.random.default_rng(1)
    smallest, largest = space.min_arch(32), space.max_arch(32)
    steps = [sandwich.step_archs(space, rng, 32) for _ in range(20)]
    assert all(len(archs) == 3 and archs[:2] == [largest, smallest] for archs in steps)
    assert len({arch for archs in steps for arch in archs[2:]}) > 1  # the rest stay uniform draws
    steps = [lower.step_archs(space, rng, 32) for _ in range(20)]
    assert all(len(archs) == 3 and archs[0] == smallest for archs in steps)
    assert any(arch != smallest for archs in steps for arch in archs[1:])
    plain = Phase("plain", 1, 0.05, ks=space.ks, expand=space.expand, depth=space.depth, subnets_per_step=2)
    assert all(smallest not in plain.step_archs(space, rng, 32) for _ in range(20))
    standard = make_schedule(space, "standard")
    assert [(p.with_largest, p.with_smallest) for p in standard] == [(False, False)] * 5 + [(True, True)]
    assert [(p.bounds_at_extreme_resolutions, p.distil_from_largest) for p in standard] == [(False, False)] * 5 + [
        (True, True)]
    assert not any(p.bounds_at_extreme_resolutions or p.distil_from_largest for p in make_schedule(space, "quick"))
    with pytest.raises(ValueError, match="subnets_per_step >= 2 \\(got 1\\)"):
        Phase("lone", 1, 0.05, ks=(3,), expand=(6,), depth=(4,), with_smallest=True)
    with pytest.raises(ValueError, match="subnets_per_step >= 3 \\(got 2\\)"):
        replace(sandwich, subnets_per_step=2)


def test_bounds_at_extreme_resolutions_take_the_space_extremes(space):
    sandwich = Phase("last", 1, 0.05, ks=space.ks, expand=space.expand, depth=space.depth, subnets_per_step=3,
                     kd_ratio=1.0, with_largest=True, with_smallest=True, bounds_at_extreme_resolutions=True)
    low, high = min(space.resolutions), max(space.resolutions)
    rng = np.random.default_rng(2)
    for r in space.resolutions:
        largest, smallest, uniform = sandwich.step_archs(space, rng, r)
        assert (largest, smallest) == (space.max_arch(high), space.min_arch(low)) and uniform.r == r
    assert replace(sandwich, bounds_at_extreme_resolutions=False).step_archs(space, rng, low)[0] == space.max_arch(low)
    lower = replace(sandwich, with_largest=False, subnets_per_step=2)
    assert lower.step_archs(space, rng, high)[0] == space.min_arch(low)
    with pytest.raises(ValueError, match="bounds_at_extreme_resolutions needs with_largest or with_smallest"):
        replace(sandwich, with_largest=False, with_smallest=False)
    with pytest.raises(ValueError, match="distil_from_largest needs with_largest and kd_ratio > 0 .*with_largest=False"):
        replace(lower, distil_from_largest=True)
    with pytest.raises(ValueError, match="kd_ratio=0.0"):
        replace(sandwich, kd_ratio=0.0, distil_from_largest=True)


class _RecordingTeacher(torch.nn.Module):
    """Stands in for the frozen teacher: records the resolutions it sees, answers uniform logits."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def forward(self, images):
        self.seen.append(images.shape[-1])
        return torch.zeros(images.shape[0], 10)


@pytest.mark.parametrize("inplace", [False, True])
def test_sandwich_step_runs_each_bound_at_its_resolution(space, tmp_path, inplace):
    """Each subnet sees the batch at its own resolution; the teacher runs once at the highest, or never when
    the phase distils from its own largest subnet (whose loss then carries a KD term of zero gradient)."""
    torch.manual_seed(0)
    model = OFAMobileNetV3(space)
    phase = Phase("last", 1, 0.03, space.ks, space.expand, space.depth, subnets_per_step=3, kd_ratio=1.0,
                  with_largest=True, with_smallest=True, bounds_at_extreme_resolutions=True,
                  distil_from_largest=inplace)
    loader = TensorLoader(*random_data(48), batch_size=16, seed=1)
    trainer = Trainer(model, [phase], loader, tmp_path, TrainConfig(seed=3, checkpoint_every=0), show_progress=False)
    teacher = trainer.teacher = _RecordingTeacher()
    seen: list[tuple[int, int]] = []
    hook = model.register_forward_pre_hook(lambda module, args: seen.append((module.active_arch.r, args[0].shape[-1])))
    try:
        trainer.run()
    finally:
        hook.remove()
    assert trainer.finished and len(trainer.losses) == 3 and all(np.isfinite(trainer.losses))
    assert all(arch_r == input_r for arch_r, input_r in seen)  # every subnet got its own resolution's batch
    steps = [seen[i:i + 3] for i in range(0, len(seen), 3)]
    assert all(step[0][0] == max(space.resolutions) and step[1][0] == min(space.resolutions) for step in steps)
    assert teacher.seen == ([] if inplace else [max(space.resolutions)] * 3)


def test_fractional_epochs_become_whole_steps():
    phase = Phase("p", 0.25, 0.1, ks=(3,), expand=(6,), depth=(4,))
    assert phase.steps(390) == 98 and phase.steps(2) == 1


def test_no_weight_decay_on_batchnorm_or_bias(space):
    model = OFAMobileNetV3(space)
    decay, rest = param_groups(model, 5e-5)
    assert decay["weight_decay"] == 5e-5 and rest["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert len(decayed) + len(rest["params"]) == len(names)
    bn_or_bias = {n for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    for name in names.values():
        module, _, leaf = name.rpartition(".")
        if leaf == "bias" or module in bn_or_bias or leaf.endswith("_matrix"):
            assert name not in decayed, name
        else:
            assert name in decayed and name.endswith("weight"), name


def test_cosine_lr_warms_up_then_anneals():
    assert cosine_lr(0.1, 0, 100, warmup=4) == pytest.approx(0.025)
    assert cosine_lr(0.1, 4, 100, warmup=4) == pytest.approx(0.1)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0)
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)


def _tiny_schedule(space):
    """Three 1-epoch phases; the third reorganises channels and distils (the resume edge cases)."""
    big = (max(space.ks),), (max(space.expand),), (max(space.depth),)
    return [
        Phase("teacher", 1, 0.05, *big, warmup_epochs=0.5),
        Phase("kernel", 1, 0.03, space.ks, big[1], space.depth, subnets_per_step=2, kd_ratio=1.0),
        Phase("expand", 1, 0.03, space.ks, space.expand, space.depth, subnets_per_step=2, kd_ratio=1.0,
              reorganize_before=True),
    ]


def _trainer(space, out, resume=False, every=3):
    torch.manual_seed(0)
    model = OFAMobileNetV3(space)
    images, labels = random_data(64)
    loader = TensorLoader(images, labels, batch_size=16, seed=1)
    config = TrainConfig(seed=3, checkpoint_every=every)
    return Trainer(model, _tiny_schedule(space), loader, out, config, resume=resume, show_progress=False)


@pytest.fixture(scope="module")
def straight(space, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run outside conftest's per-test one_thread
    try:
        trainer = _trainer(space, tmp_path_factory.mktemp("straight"))
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    assert trainer.finished and len(trainer.losses) == 12
    assert all(np.isfinite(trainer.losses))
    return trainer


@pytest.mark.parametrize(("kill_after", "stop"), [(6, 7), (8, 8), (9, 11)])
def test_resume_reproduces_the_uninterrupted_run(space, straight, tmp_path, kill_after, stop):
    """Killed after a mid-phase checkpoint (resume crosses the reorganising boundary), exactly at a phase
    end, and inside the distilled, reorganised last phase."""
    first = _trainer(space, tmp_path / "killed")
    first.run(max_steps=stop)  # the steps after the last checkpoint are lost, as in a real kill
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        _trainer(space, tmp_path / "killed")
    resumed = _trainer(space, tmp_path / "killed", resume=True)
    assert resumed.global_step == kill_after
    resumed.run()
    np.testing.assert_allclose(first.losses[:kill_after] + resumed.losses, straight.losses, rtol=1e-6, atol=1e-7)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    with open(tmp_path / "killed" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert [r["phase"] for r in rows] == ["teacher"] * 4 + ["kernel"] * 4 + ["expand"] * 4


def test_resume_refuses_a_different_schedule(space, tmp_path):
    trainer = _trainer(space, tmp_path)
    trainer.run(max_steps=3)
    model = OFAMobileNetV3(space)
    loader = TensorLoader(*random_data(64), batch_size=16)
    with pytest.raises(ValueError, match="schedule differs"):
        Trainer(model, make_schedule(space, "quick"), loader, tmp_path, TrainConfig(seed=3, checkpoint_every=3),
                resume=True)


def test_damaged_checkpoint_is_refused_with_the_file_named(space, tmp_path):
    trainer = _trainer(space, tmp_path)
    trainer.run(max_steps=3)
    index = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    tensors = tmp_path / "checkpoint" / next(f for f in index["files"] if f.endswith(".safetensors"))
    blob = bytearray(tensors.read_bytes())
    blob[-1] ^= 0xFF
    tensors.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=f"{tensors.name}.*SHA-256"):
        load_state(tmp_path / "checkpoint")
    (tmp_path / "checkpoint" / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="state.json: not valid JSON"):
        _trainer(space, tmp_path, resume=True)
    with pytest.raises(ValueError, match="no training checkpoint"):
        _trainer(space, tmp_path / "nothing-here", resume=True)


def test_two_gloo_processes_keep_identical_weights(tmp_path):
    """2 CPU ranks under DDP, started from different weights, sampling subnets of a reorganised, distilled
    phase: after every step the ranks hold the same weights, and training moved them."""
    import torch.multiprocessing as mp

    out = tmp_path / "run"
    out.mkdir()
    mp.spawn(ddp_worker, args=(2, str(tmp_path / "rendezvous"), str(out)), nprocs=2, join=True)
    rank0, rank1 = (load_file(out / f"weights-rank{r}.safetensors") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0, msg=name)
    torch.manual_seed(0)  # rank 0's initial weights
    initial = OFAMobileNetV3(get_space("tiny-mbv3")).state_dict()
    moved = [name for name in rank0 if name.endswith("weight") and not torch.equal(rank0[name], initial[name])]
    assert len(moved) > 0.5 * sum(name.endswith("weight") for name in rank0)
    losses = [(out / f"losses-rank{r}.txt").read_text().split() for r in (0, 1)]
    assert len(losses[0]) == len(losses[1]) == 6 and losses[0] != losses[1]  # each rank saw its own shard
    index = json.loads((out / "checkpoint" / "state.json").read_text())
    assert {"rank0-000000006.json", "rank1-000000006.json"} <= set(index["files"])


def test_keep_freed_memory_applies_on_glibc():
    import platform
    import sys

    from hwnas.train.allocator import keep_freed_memory

    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is on_glibc
