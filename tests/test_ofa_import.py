"""Importing OFA's real Samsung Note10 tables reproduces OFA's own predictions to 1e-9."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from hwnas.latency import LatencyPredictor, import_ofa_tables
from hwnas.space import get_space

from conftest import SHARED
from test_space import ofa_given_spec_keys

RESOLUTIONS = list(range(160, 225, 4))


@pytest.fixture(scope="module")
def note10(note10_dir):
    return import_ofa_tables(sorted(note10_dir.glob("*_lookup_table.yaml")), device="Samsung Note10")


def test_import_keeps_every_entry(note10, note10_dir):
    assert note10.metadata["device"] == "Samsung Note10"
    assert note10.metadata["protocol"]["resolutions"] == RESOLUTIONS
    # 1x1 head ops appear in every file with different values: stored per resolution
    assert "Logits-input:1x1x1536-output:1000@r160" in note10
    raw = yaml.safe_load((note10_dir / "160_lookup_table.yaml").read_text())
    key = "Conv-input:160x160x3-output:80x80x24"
    assert note10.get(key)["mean"] == raw[key]["mean"] and note10.get(key)["n"] == raw[key]["count"]
    assert note10.get(key)["std"] == raw[key]["std"] and note10.get(key)["median"] is None


def test_predictions_equal_ofa_sum_of_means(note10, note10_dir):
    space = get_space("ofa-mbv3-w1.2")
    predictor = LatencyPredictor(space, note10)
    assert predictor.served_resolutions == RESOLUTIONS
    raw = {r: yaml.safe_load((note10_dir / f"{r}_lookup_table.yaml").read_text()) for r in RESOLUTIONS}
    rng = np.random.default_rng(0)
    codes = space.sample_codes(3000, rng)
    codes[:, -1] = rng.integers(space.resolutions.index(160), len(space.resolutions), len(codes))
    archs = space.decode(codes)
    predicted = predictor.predict(codes)
    reference = np.array([sum(raw[a.r][k]["mean"] for k in ofa_given_spec_keys(a)) for a in archs])
    np.testing.assert_allclose(predicted, reference, rtol=1e-9, atol=0)
    assert {a.r for a in archs} == set(RESOLUTIONS)


def test_resolutions_outside_the_tables_are_refused(note10):
    space = get_space("ofa-mbv3-w1.2")
    predictor = LatencyPredictor(space, note10)
    with pytest.raises(ValueError, match="resolution 128 is not covered"):
        predictor.predict([space.min_arch(128)])
    with pytest.raises(KeyError, match="Conv-input:128x128x3"):
        LatencyPredictor(space, note10, resolutions=[128, 160])


def test_ofa_w10_space_is_not_served_by_w12_tables(note10):
    with pytest.raises(KeyError, match="covers none"):
        LatencyPredictor(get_space("ofa-mbv3-w1.0"), note10)


def test_proxylessnas_yaml_with_variance_imports():
    path = SHARED / "external" / "ofa_luts" / "proxylessnas" / "mobile_trim.yaml"
    if not path.is_file():
        pytest.skip("ProxylessNAS table not available")
    table = import_ofa_tables([path], device="ProxylessNAS mobile")
    raw = yaml.safe_load(path.read_text())
    assert len(table) == len(raw)
    key = "Conv-input:224x224x3-output:112x112x32"
    assert table.get(key)["std"] == pytest.approx(np.sqrt(raw[key]["var"]))


def test_bad_ofa_files_name_file_and_key(tmp_path):
    path = tmp_path / "160_lookup_table.yaml"
    path.write_text("Conv-input:160x160x3-output:80x80x24:\n  count: 3\n  mean: -2\n")
    with pytest.raises(ValueError, match=r"160_lookup_table.yaml: Conv-input:160x160x3-output:80x80x24: mean=-2"):
        import_ofa_tables([path])
    path.write_text("key: [unclosed\n")
    with pytest.raises(ValueError, match="160_lookup_table.yaml: not a valid OFA lookup table"):
        import_ofa_tables([path])
    path.write_text("!!python/object/apply:os.system ['echo unsafe']\n")
    with pytest.raises(ValueError, match="not a valid OFA lookup table"):
        import_ofa_tables([path])
