"""OFA's checkpoints imported into hwnas, checked against OFA's own code (the ``ofa`` PyPI package).

OFA imports ``torchvision`` only for its data loaders. PyPI's torchvision 0.28.0 matches torch 2.13.0 but is
built against CUDA torch and fails on import here (``operator torchvision::nms does not exist``), so this
test puts an empty stand-in module in ``sys.modules`` for the time OFA is imported: no torchvision code
runs in anything compared here. The networks are OFA's classes with their own initialisation and random
BatchNorm statistics and affine parameters, saved in OFA's checkpoint format (``{"state_dict": ...}``).
"""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.cli import main
from hwnas.nn import load_supernet, supernet_extra
from hwnas.nn.ofa_checkpoint import import_ofa_supernet
from hwnas.search.ofa_predictor import OFA_IMAGE_SIZES, import_ofa_predictor
from hwnas.space import get_space

from train_helpers import write_npz_dataset

NOTE10 = Path(__file__).resolve().parents[1] / "device_profiles" / "note10-ofa-mbv3-w1.2" / "lut.json"


class _Placeholder:
    def __init__(self, *args, **kwargs) -> None:
        pass


def _stand_in(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so that submodule imports resolve to the stand-ins below

    def attribute(attr: str) -> type:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Placeholder  # OFA subclasses transforms.RandomResizedCrop at import time

    module.__getattr__ = attribute  # type: ignore[method-assign]
    return module


@pytest.fixture(scope="module")
def ofa():
    """OFA's package, imported with the torchvision stand-in; skipped if the test extra is not installed."""
    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.datasets")
    saved = {name: sys.modules.get(name) for name in names}
    stand_ins = {name: _stand_in(name) for name in names}
    stand_ins["torchvision"].transforms = stand_ins["torchvision.transforms"]
    stand_ins["torchvision"].datasets = stand_ins["torchvision.datasets"]
    stand_ins["torchvision.transforms"].functional = stand_ins["torchvision.transforms.functional"]
    sys.modules.update(stand_ins)
    try:
        pytest.importorskip("ofa", reason="OFA's package (test extra) is not installed")
        from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3, OFAProxylessNASNets
        from ofa.nas.accuracy_predictor import AccuracyPredictor, MobileNetArchEncoder
        from ofa.nas.efficiency_predictor import Mbv3FLOPsModel, MBv3LatencyTable
        yield types.SimpleNamespace(OFAMobileNetV3=OFAMobileNetV3, OFAProxylessNASNets=OFAProxylessNASNets,
                                    AccuracyPredictor=AccuracyPredictor, MobileNetArchEncoder=MobileNetArchEncoder,
                                    Mbv3FLOPsModel=Mbv3FLOPsModel, MBv3LatencyTable=MBv3LatencyTable)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _random_ofa(ofa, width: float, seed: int = 0):
    """OFA's supernet with its own initialisation, then random BN statistics and affine parameters."""
    torch.manual_seed(seed)
    net = ofa.OFAMobileNetV3(n_classes=1000, dropout_rate=0, width_mult=width, ks_list=[3, 5, 7],
                             expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    return net.eval()


def _save_ofa(net, path: Path) -> Path:
    torch.save({"state_dict": net.state_dict()}, path)
    return path


class _RecordingTable:
    """OFA's MBv3 latency table, asked for every op of a subnet; records the keys instead of reading a YAML."""

    def __init__(self, ofa) -> None:
        self.keys: list[str] = []
        keys = self.keys

        class Recording(ofa.MBv3LatencyTable):
            def __init__(self) -> None:
                self.lut = _KeyRecorder(keys)

        self.table = Recording()


class _KeyRecorder(dict):
    def __init__(self, keys: list[str]) -> None:
        super().__init__()
        self.keys_seen = keys

    def __getitem__(self, key: str) -> dict[str, float]:
        self.keys_seen.append(key)
        return {"mean": 0.0}


def _archs(space, n: int = 20) -> list:
    rng = np.random.default_rng(3)
    return [space.min_arch(), space.max_arch()] + [space.sample(rng) for _ in range(n - 2)]


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_imported_supernet_computes_what_ofa_computes(ofa, width, tmp_path):
    name = f"ofa-mbv3-w{width}"
    space = get_space(name)
    reference = _random_ofa(ofa, width)
    path = _save_ofa(reference, tmp_path / "ofa.pth")
    out = tmp_path / "imported.safetensors"
    assert main(["supernet", "import-ofa", str(path), "--space", name, "-o", str(out)]) == 0
    net = load_supernet(out).eval()
    extra = supernet_extra(out)
    assert net.num_classes == 1000 and extra["input_size"] == 224 and len(extra["classes"]) == 1000
    assert extra["preprocessing"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    flops = ofa.Mbv3FLOPsModel(reference)
    recorder = _RecordingTable(ofa)
    resolutions = (128, 160, 192, 224)
    worst = 0.0
    for i, arch in enumerate(_archs(space)):
        d = arch.to_dict()
        r = resolutions[i % len(resolutions)] if i >= 2 else (128 if i == 0 else 224)
        arch = space.arch({**d, "r": r})
        x = torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(i))
        reference.set_active_subnet(ks=d["ks"], e=d["e"], d=d["d"])
        with torch.no_grad():
            ofa_supernet, ofa_subnet = reference(x), reference.get_active_subnet(preserve_weight=True).eval()(x)
            net.set_active(arch)
            ours_supernet, ours_subnet = net(x), net.extract(arch).eval()(x)
        worst = max(worst, float((ofa_supernet - ours_supernet).abs().max()), float((ofa_subnet - ours_subnet).abs().max()))
        ofa_macs = flops.get_efficiency({"ks": d["ks"], "e": d["e"], "d": d["d"], "image_size": r})
        assert space.macs(arch) / 1e6 == pytest.approx(ofa_macs, rel=1e-9), (i, r)
        recorder.keys.clear()
        recorder.table.predict_network_latency_given_config(reference.get_active_net_config(), r)
        assert sorted(recorder.keys) == sorted(sig.key for sig in space.signatures(arch)), (i, r)
    print(f"{name}: worst |logit difference| over 20 subnets {worst:.2e}")
    assert worst <= 1e-5, worst


def test_imported_predictor_predicts_what_ofas_predicts(ofa, tmp_path):
    space = get_space("ofa-mbv3-w1.2")
    encoder = ofa.MobileNetArchEncoder(image_size_list=list(OFA_IMAGE_SIZES), ks_list=[3, 5, 7],
                                       expand_list=[3, 4, 6], depth_list=[2, 3, 4])
    torch.manual_seed(0)
    reference = ofa.AccuracyPredictor(encoder, device="cpu")
    with torch.no_grad():
        reference.base_acc.fill_(0.78)
    torch.save(reference.state_dict(), tmp_path / "acc.pth")  # OFA's released predictor is a bare state dict
    ours = import_ofa_predictor(tmp_path / "acc.pth", space)
    archs = _archs(space, 50)
    ofa_dicts = [{"ks": a.ks, "e": a.e, "d": a.d, "image_size": a.r} for a in archs]
    with torch.no_grad():
        expected = reference.predict_acc(ofa_dicts).numpy()
    np.testing.assert_allclose(ours.predict(space.encode(archs)), expected, atol=1e-5)
    with pytest.raises(ValueError, match="not an OFA accuracy predictor"):
        import_ofa_predictor(_save_ofa(_random_ofa(ofa, 1.0), tmp_path / "net.pth"), space)


def test_imported_supernet_searches_and_exports_end_to_end(ofa, tmp_path, capsys):
    """Import with OFA's predictor → search under the shipped Note10 LUT at 3 budgets → ONNX + TFLite, verified."""
    write_npz_dataset(tmp_path, name="imagenet", n_train=40, n_test=8, size=64)
    path = _save_ofa(_random_ofa(ofa, 1.2, seed=1), tmp_path / "ofa.pth")
    encoder = ofa.MobileNetArchEncoder(image_size_list=list(OFA_IMAGE_SIZES))
    torch.manual_seed(1)
    predictor = ofa.AccuracyPredictor(encoder, device="cpu")
    torch.save({"state_dict": predictor.state_dict()}, tmp_path / "acc.pth")
    out = tmp_path / "w12" / "supernet.safetensors"
    out.parent.mkdir()
    assert main(["supernet", "import-ofa", str(path), "--space", "ofa-mbv3-w1.2", "-o", str(out),
                 "--predictor", str(tmp_path / "acc.pth"), "--data-dir", str(tmp_path), "--bn-images", "16"]) == 0
    assert main(["search", "--supernet", str(out), "--lut", str(NOTE10), "--latency-ms", "14,20,30",
                 "--predictor", str(out.parent / "accuracy_predictor.safetensors"), "--generations", "100",
                 "--out", str(tmp_path / "search")]) == 0
    results = json.loads((tmp_path / "search" / "results.json").read_text())
    assert [entry["budgets_ms"]["note10-ofa-mbv3-w1.2"] for entry in results["found"]] == [14, 20, 30]
    for budget in (14, 20, 30):
        folder = tmp_path / f"export-{budget}"
        assert main(["export", "--from-search", str(tmp_path / "search"), "--budget", str(budget), "--no-measure",
                     "--test-images", "8", "--out", str(folder)]) == 0
        report = json.loads((folder / "report.json").read_text())
        for fmt in ("onnx", "tflite"):
            assert report["formats"][fmt]["max_abs_diff"] <= 1e-4, (budget, fmt, report["formats"][fmt])
        assert report["classes"] == [str(i) for i in range(1000)]
    # imported without data: search runs on the predictor alone and says what it did not measure; export,
    # which must recalibrate BN on images, refuses naming what is missing
    bare = tmp_path / "bare" / "supernet.safetensors"
    bare.parent.mkdir()
    assert main(["supernet", "import-ofa", str(path), "--space", "ofa-mbv3-w1.2", "-o", str(bare)]) == 0
    capsys.readouterr()
    assert main(["search", "--supernet", str(bare), "--lut", str(NOTE10), "--latency-ms", "20", "--generations", "20",
                 "--predictor", str(out.parent / "accuracy_predictor.safetensors"), "--out", str(tmp_path / "s2")]) == 0
    assert "holdout accuracy not measured: no evaluation data (no shipped subset for 'imagenet'" in capsys.readouterr().out
    assert main(["export", "--from-search", str(tmp_path / "s2"), "--no-measure", "--out", str(tmp_path / "e2")]) == 2
    assert "no shipped subset for 'imagenet'; pass data_dir" in capsys.readouterr().err


def test_import_errors_name_the_file_and_the_tensor(ofa, tmp_path, capsys):
    w10 = _save_ofa(_random_ofa(ofa, 1.0), tmp_path / "w10.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(w10.read_bytes()[: len(w10.read_bytes()) // 2])
    torch.manual_seed(0)
    proxyless = _save_ofa(ofa.OFAProxylessNASNets(n_classes=1000, dropout_rate=0), tmp_path / "proxyless.pth")
    cases = [
        (truncated, "ofa-mbv3-w1.0", r"truncated.pth: not a readable PyTorch checkpoint"),
        (proxyless, "ofa-mbv3-w1.0",
         r"proxyless.pth: tensor 'feature_mix_layer\.bn\.weight' \(1280,\) is not part of an OFAMobileNetV3"),
        (w10, "ofa-mbv3-w1.2", r"w10.pth: tensor 'first_conv\.conv\.weight' has shape \(16, 3, 3, 3\), but space "
                               r"'ofa-mbv3-w1.2' needs \(24, 3, 3, 3\)"),
        (tmp_path / "missing.pth", "ofa-mbv3-w1.0", "missing.pth: no such OFA checkpoint"),
    ]
    for path, space, message in cases:
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            import_ofa_supernet(path, space)
    assert main(["supernet", "import-ofa", str(proxyless), "--space", "ofa-mbv3-w1.0", "-o", str(tmp_path / "x")]) == 2
    assert "is not part of an OFAMobileNetV3" in capsys.readouterr().err and not (tmp_path / "x").exists()
    state = torch.load(w10, weights_only=True)["state_dict"]
    del state["blocks.5.conv.depth_conv.se.fc.reduce.bias"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"partial.pth: lacks 1 tensor\(s\) .* first 'blocks.4.se_reduce.bias'"):
        import_ofa_supernet(tmp_path / "partial.pth", "ofa-mbv3-w1.0")
