"""Search on a real (tiny, untrained) supernet: the resumable accuracy dataset and gradient search."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import write_npz_dataset

from hwnas.data import load_npz
from hwnas.eval import Preprocessing
from hwnas.latency import LatencyPredictor, expected_latency
from hwnas.nn import OFAMobileNetV3
from hwnas.search import dataset as dataset_module
from hwnas.search import smallest
from hwnas.search.dataset import build_accuracy_dataset
from hwnas.search.gradient import ArchitectureLogits, gradient_search, latency_penalty
from hwnas.space import get_space

from conftest import random_table


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    write_npz_dataset(folder, n_train=64, n_test=16)
    data = load_npz(folder / "toy_train.npz")
    space = get_space("tiny-mbv3", num_classes=4)
    torch.manual_seed(0)
    net = OFAMobileNetV3(space)
    return space, net, data, Preprocessing.of(data)


def test_accuracy_dataset_is_seeded_journaled_and_resumes(setup, tmp_path, monkeypatch):
    space, net, data, pre = setup
    calls = []
    real = dataset_module.subnet_accuracy
    monkeypatch.setattr(dataset_module, "subnet_accuracy", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    first = build_accuracy_dataset(net, data.subset(range(16)), data.subset(range(16, 48)), pre, 6, tmp_path, seed=3,
                                   progress=False)
    assert len(first) == 6 and len(calls) == 6 and np.all((first.accuracies >= 0) & (first.accuracies <= 1))
    np.testing.assert_array_equal(first.codes, dataset_module.stratified_codes(space, 6, 3))
    journal = tmp_path / "journal-rank0.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:20])  # a kill: one entry lost, one torn
    calls.clear()
    again = build_accuracy_dataset(net, data.subset(range(16)), data.subset(range(16, 48)), pre, 6, tmp_path, seed=3,
                                   progress=False)
    assert len(calls) == 2 and calls == space.decode(first.codes[4:])
    np.testing.assert_array_equal(again.accuracies, first.accuracies)
    with pytest.raises(ValueError, match="different run"):
        build_accuracy_dataset(net, data.subset(range(16)), data.subset(range(16, 48)), pre, 6, tmp_path, seed=4,
                               progress=False)
    assert "n" not in json.loads(journal.read_text().splitlines()[0])  # the seed, not n, fixes the archs
    calls.clear()
    grown = build_accuracy_dataset(net, data.subset(range(16)), data.subset(range(16, 48)), pre, 8, tmp_path, seed=3,
                                   progress=False)
    assert len(calls) == 2 and len(grown) == 8  # only the two new archs are measured
    np.testing.assert_array_equal(grown.accuracies[:6], first.accuracies)
    calls.clear()
    cut = build_accuracy_dataset(net, data.subset(range(16)), data.subset(range(16, 48)), pre, 4, tmp_path, seed=3,
                                 progress=False)
    assert not calls and len(cut) == 4


def test_onnxruntime_engine_counts_the_same_top1_as_torch(setup):
    from hwnas.eval import subnet_accuracy

    space, net, data, pre = setup
    for arch in (space.min_arch(), space.max_arch(), space.sample(5)):
        counts = {engine: subnet_accuracy(net, arch, data.subset(range(16)), data.subset(range(16, 64)), pre,
                                          engine=engine) for engine in ("torch", "onnxruntime")}
        assert counts["torch"] == counts["onnxruntime"], (arch, counts)
    with pytest.raises(ValueError, match="engine='tvm'"):
        subnet_accuracy(net, space.min_arch(), data, data, pre, engine="tvm")


def test_latency_penalty_reaches_the_logits(setup):
    """The penalty's gradient is exact and non-zero on every logit group (NNI detaches it)."""
    space, net, _, _ = setup
    predictor = LatencyPredictor(space, random_table(space, seed=2))
    logits = ArchitectureLogits(net, predictor.resolution_mask)
    with torch.no_grad():
        for group in (logits.ks, logits.e, logits.d, logits.r):
            group.normal_(0, 0.5)
    expected = expected_latency(predictor, logits.probabilities())
    for kind in ("abs", "add", "mul", "hinge"):
        logits.zero_grad()
        loss = latency_penalty(torch.tensor(1.0), expected, 0.5 * float(expected.detach()), kind, 1.0)
        loss.backward(retain_graph=True)
        for name in ("ks", "e", "d", "r"):
            grad = getattr(logits, name).grad
            assert grad is not None and torch.count_nonzero(grad) > 0, (kind, name)
    logits.zero_grad()
    latency_penalty(torch.tensor(1.0), expected, 2.0 * float(expected.detach()), "hinge", 1.0).backward()
    assert all(torch.count_nonzero(getattr(logits, n).grad) == 0 for n in ("ks", "e", "d", "r"))  # under budget
    logits.zero_grad()  # abs: under the budget is penalised too, so the search is pushed up towards it
    expected = expected_latency(predictor, logits.probabilities())
    latency_penalty(torch.tensor(1.0), expected, 2.0 * float(expected.detach()), "abs", 1.0).backward()
    assert float((logits.ks.grad * logits.ks.grad).sum()) > 0


def test_a_heavier_penalty_finds_a_faster_arch(setup):
    space, net, data, pre = setup
    predictor = LatencyPredictor(space, random_table(space, seed=2))
    low = smallest(predictor)[0]
    high = predictor.predict_one(space.max_arch())
    budget = low + 0.3 * (high - low)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    results = [gradient_search(net, predictor, budget, data, pre, steps=25, batch_size=16, penalty="add",
                               weight=weight, lr=0.1, seed=0, progress=False) for weight in (0.0, 5.0)]
    assert results[1].expected_latency_ms < results[0].expected_latency_ms
    assert results[1].latency_ms == pytest.approx(predictor.predict_one(results[1].arch))
    for name, tensor in net.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(tensor, before[name]), name  # weights and BN statistics frozen
    assert net.training and all(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="cannot be met"):
        gradient_search(net, predictor, 0.5 * low, data, pre, steps=1, progress=False)
