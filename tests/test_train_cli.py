"""``hwnas train`` as a user runs it: one process and under torchrun, on a tiny local dataset."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from train_helpers import write_npz_dataset

from hwnas.cli import main
from hwnas.data import load_npz
from hwnas.eval import Preprocessing, reference_subnets, subnet_accuracy
from hwnas.nn import OFAMobileNetV3, load_supernet, supernet_extra
from hwnas.space import get_space

from conftest import ROOT

SMOKE = ["--data", "toy", "--max-steps-per-phase", "2", "--batch-size", "16", "--holdout", "0.25",
         "--bn-images", "8", "--checkpoint-every", "3"]


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    write_npz_dataset(folder)
    return folder


def test_train_writes_supernet_results_log_and_plot_then_resumes(toy_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(toy_dir), "--out", str(out), *SMOKE]) == 0
    printed = capsys.readouterr().out
    assert "smallest" in printed and "largest" in printed and "results.json" in printed
    results = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in results["subnets"]] == ["smallest", "middle", "largest"]
    assert all(0.0 <= s["test_acc"] <= 1.0 for s in results["subnets"])
    macs = [s["macs"] for s in results["subnets"]]
    # 72 training images = 4 batches per epoch; phases of 0.2 epochs round to 1 step, the others are capped at 2
    assert macs == sorted(macs) and results["wall_s"] > 0 and results["steps"] == 10
    net = load_supernet(results["supernet"])
    assert net.num_classes == 4 and net.space.name == "tiny-mbv3"
    extra = supernet_extra(results["supernet"])
    assert extra["classes"] == ["a", "b", "c", "d"] and len(extra["preprocessing"]["mean"]) == 3
    phase_eval = json.loads((out / "phase_eval.json").read_text())
    assert [row["phase"] for row in phase_eval] == ["teacher", "kernel", "depth-1", "depth-2", "expand-1", "expand-2"]
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("phase,epoch,step") and len(rows) == 11
    config = json.loads((out / "config.json").read_text())
    assert config["split"]["holdout"] == 24 and config["total_steps"] == 10

    # resuming a finished run trains nothing more and rewrites the same results
    assert main(["train", "--data-dir", str(toy_dir), "--out", str(out), "--resume", *SMOKE]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["steps"] == 10 and again["resumed"] and again["subnets"] == results["subnets"]
    # a fresh run into a folder that holds a checkpoint is refused, naming it
    assert main(["train", "--data-dir", str(toy_dir), "--out", str(out), *SMOKE]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err


def test_train_refuses_bad_options_with_the_value_named(toy_dir, tmp_path, capsys):
    assert main(["train", "--data-dir", str(toy_dir), "--out", str(tmp_path / "a"), *SMOKE, "--holdout", "1.5"]) == 2
    assert "holdout=1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data-dir", str(toy_dir), "--out", str(tmp_path / "c"), "--epochs", "1,2,3"])
    assert "'1,2,3': epochs=[1.0, 2.0, 3.0]: give 6 numbers" in capsys.readouterr().err
    assert main(["train", "--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "b")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_torchrun_two_processes(toy_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
               "-m", "hwnas", "train", "--data-dir", str(toy_dir), "--out", str(out), *SMOKE]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 10 and len(results["subnets"]) == 3
    index = json.loads((out / "checkpoint" / "state.json").read_text())
    assert index["world_size"] == 2 and {"rank0-000000010.json", "rank1-000000010.json"} <= set(index["files"])
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2 and config["options"]["batch_size"] == 16


def test_preprocessing_matches_numpy(toy_dir):
    data = load_npz(toy_dir / "toy_train.npz")
    pre = Preprocessing.of(data)
    pixels = data.images.reshape(-1, 3).astype(np.float64) / 255
    np.testing.assert_allclose(pre.mean, pixels.mean(0), atol=6e-5)
    np.testing.assert_allclose(pre.std, pixels.std(0), atol=6e-5)


def test_subnet_accuracy_recalibrates_a_copy_and_counts_top1(toy_dir):
    space = get_space("tiny-mbv3", num_classes=4)
    torch.manual_seed(0)
    net = OFAMobileNetV3(space).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    data = load_npz(toy_dir / "toy_train.npz")
    pre = Preprocessing.of(data)
    arch = reference_subnets(space)["middle"]
    accuracy = subnet_accuracy(net, arch, data.subset(range(32)), data.subset(range(32, 96)), pre, batch_size=16)
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, before[name]), name  # the supernet is untouched
    # the same by hand: extract, recalibrate on the same images, count
    from hwnas.nn import recalibrate_bn

    subnet = net.extract(arch)
    x = pre.transform(arch.r)(data.images)
    recalibrate_bn(subnet, [x[i:i + 16] for i in range(0, 32, 16)], 2)
    subnet.eval()
    with torch.no_grad():
        expected = float((subnet(x[32:96]).argmax(1) == torch.from_numpy(data.labels[32:96])).float().mean())
    assert accuracy == pytest.approx(expected, abs=1 / 64 + 1e-9)
    with pytest.raises(ValueError, match="empty"):
        subnet_accuracy(net, arch, data, data.subset([]), pre)
