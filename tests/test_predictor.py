"""LatencyPredictor: exact sums, calibration, coverage errors, code validation and thread safety."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from hwnas.latency import LatencyPredictor, LatencyTable
from hwnas.space import get_space

from conftest import python_sum, random_table


@pytest.mark.parametrize("name", ["tiny-mbv3", "ofa-mbv3-w1.0"])
def test_predict_equals_python_key_sum(name):
    space = get_space(name, resolutions=(24, 32, 40)) if name != "tiny-mbv3" else get_space(name)
    table = random_table(space, seed=2)
    predictor = LatencyPredictor(space, table)
    archs = [space.sample(np.random.default_rng(i)) for i in range(300)] + [space.min_arch(), space.max_arch()]
    np.testing.assert_allclose(predictor.predict(archs), [python_sum(space, table, a) for a in archs], rtol=1e-12)
    np.testing.assert_allclose(predictor.predict([a.to_dict() for a in archs]), predictor.predict(archs))


def test_calibration_is_applied():
    space = get_space("tiny-mbv3")
    raw = LatencyPredictor(space, random_table(space, seed=4))
    calibrated = LatencyPredictor(space, random_table(space, seed=4, calibration=(1.2, 0.3)))
    codes = space.sample_codes(100, 0)
    np.testing.assert_allclose(calibrated.predict(codes), 1.2 * raw.predict(codes) + 0.3, rtol=1e-12)
    assert calibrated.calibration == {"scale": 1.2, "offset": 0.3, "per_op": 0.0, "per_element": 0.0, "per_param": 0.0}


def test_richer_calibration_terms_apply_per_op():
    space = get_space("tiny-mbv3")
    table = random_table(space, seed=9, calibration=(0.9, 0.05, -0.004, 1e-7, 2e-8))
    predictor = LatencyPredictor(space, table)
    archs = [space.sample(np.random.default_rng(i)) for i in range(100)]
    np.testing.assert_allclose(predictor.predict(archs), [python_sum(space, table, a) for a in archs], rtol=1e-12)
    with pytest.raises(ValueError, match="per_op"):
        table.set_calibration(1.0, 0.0, per_op="a lot")


def test_missing_keys_are_listed():
    space = get_space("tiny-mbv3")
    table = random_table(space, seed=5)
    dropped = [sig.key for sig in space.all_signatures([32]) if sig.kind == "expanded_conv"][:2]
    for key in dropped:
        table.remove(key)
    with pytest.raises(KeyError) as info:
        LatencyPredictor(space, table)
    assert all(key in str(info.value) for key in dropped)


def test_partial_coverage_serves_the_covered_resolutions():
    space = get_space("tiny-mbv3")
    predictor = LatencyPredictor(space, random_table(space, resolutions=[24, 40], seed=6))
    assert predictor.served_resolutions == [24, 40]
    assert predictor.resolution_mask.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="resolution 32 is not covered"):
        predictor.predict([space.max_arch(32)])


def test_out_of_range_codes_name_row_and_field():
    space = get_space("tiny-mbv3")
    predictor = LatencyPredictor(space, random_table(space, seed=7))
    codes = space.sample_codes(10, 0)
    codes[4, 3] = 9
    with pytest.raises(ValueError, match=r"row 4: ks\[3\] code 9"):
        predictor.predict(codes)
    with pytest.raises(ValueError, match=r"shape"):
        predictor.predict(codes[:, :-1])


@pytest.mark.parametrize("codes, dtype", [
    (np.zeros((2, 46), dtype=np.float64), "float64"),
    (np.full((2, 46), np.nan), "float64"),
    (np.zeros((2, 46), dtype=np.float32), "float32"),
    (np.zeros((2, 46), dtype=bool), "bool"),
    (np.array([[0] * 46, [0] * 46], dtype=object), "object"),
])
def test_non_integer_code_arrays_are_refused_naming_the_dtype(codes, dtype):
    """Not an IndexError from deep inside encoding, and never silently truncated to integers."""
    from hwnas.search.accuracy_predictor import AccuracyPredictor

    space = get_space("tiny-mbv3")
    assert space.num_codes == codes.shape[1]
    for predictor in (LatencyPredictor(space, random_table(space, seed=7)), AccuracyPredictor(space)):
        with pytest.raises(ValueError, match=f"integer array, got dtype {dtype}"):
            predictor.predict(codes)


def test_both_predictors_take_archs_dicts_or_codes_alike():
    from hwnas.search.accuracy_predictor import AccuracyPredictor

    space = get_space("tiny-mbv3")
    archs = [space.sample(seed) for seed in range(5)]
    codes = space.encode(archs)
    for predictor in (LatencyPredictor(space, random_table(space, seed=7)), AccuracyPredictor(space)):
        by_codes = predictor.predict(codes)
        np.testing.assert_array_equal(predictor.predict(archs), by_codes)
        np.testing.assert_array_equal(predictor.predict([a.to_dict() for a in archs]), by_codes)
        np.testing.assert_array_equal(predictor.predict(codes.astype(np.int64)), by_codes)
        assert predictor.predict(archs[0]).shape == (1,)


def test_a_table_of_another_space_names_the_file_and_both_spaces(tmp_path):
    table = random_table(get_space("ofa-mbv3-w1.0"), [160], seed=1)
    table.update_metadata(space="ofa-mbv3-w1.0")
    table.save(tmp_path / "lut.json")
    with pytest.raises(ValueError) as info:
        LatencyPredictor(get_space("tiny-mbv3"), LatencyTable.load(tmp_path / "lut.json"))
    message = str(info.value)
    assert str(tmp_path / "lut.json") in message and "'ofa-mbv3-w1.0'" in message and "'tiny-mbv3'" in message


def test_concurrent_callers_get_identical_results():
    space = get_space("ofa-mbv3-w1.0", resolutions=(160, 192, 224))
    predictor = LatencyPredictor(space, random_table(space, seed=8))
    codes = space.sample_codes(200_000, 1)
    reference = predictor.predict(codes)
    results: list[np.ndarray] = [None] * 4  # type: ignore[list-item]

    def work(i: int) -> None:
        results[i] = predictor.predict(codes, threads=1 + i % 2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in results:
        np.testing.assert_array_equal(result, reference)
    np.testing.assert_array_equal(predictor.predict(codes, threads=0), reference)
