"""LatencyTable: JSON round trip, metadata, atomic writes, merge/missing, and robustness to bad files."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from hwnas.latency import SCHEMA_VERSION, LatencyTable, make_metadata
from hwnas.space import get_space

from conftest import ROOT, random_table


@pytest.fixture()
def table():
    return random_table(get_space("tiny-mbv3"), [24], seed=3)


def test_round_trip_preserves_entries_and_metadata(table, tmp_path):
    path = tmp_path / "lut.json"
    table.set("extra-op", 1.25, n=7, median=1.2, std=0.1, p5=1.1, p95=1.4, min=1.05)
    table.set_calibration(1.1, 0.05, rmspe=2.0)
    table.save(path)
    loaded = LatencyTable.load(path)
    assert loaded.keys() == table.keys()
    assert loaded.get("extra-op") == {"mean": 1.25, "median": 1.2, "std": 0.1, "p5": 1.1, "p95": 1.4,
                                      "min": 1.05, "n": 7}
    assert loaded.metadata == table.metadata
    assert loaded.calibration == {"scale": 1.1, "offset": 0.05, "rmspe": 2.0}
    assert loaded.dumps() == table.dumps()  # deterministic
    document = json.loads(path.read_text())
    assert document["format"] == "hwnas-latency-table" and document["schema_version"] == SCHEMA_VERSION
    assert document["entries"]["extra-op"]["n"] == 7


def test_unknown_stats_are_null_on_disk(tmp_path):
    table = LatencyTable()
    table.set("op", 0.5)
    table.save(tmp_path / "t.json")
    entry = json.loads((tmp_path / "t.json").read_text())["entries"]["op"]
    assert entry["median"] is None and entry["p95"] is None
    assert LatencyTable.load(tmp_path / "t.json").get("op")["median"] is None


def test_metadata_has_the_documented_fields():
    meta = make_metadata(device="cpu", runtime={"name": "onnxruntime", "version": "1.31", "threads": 1})
    for field in ("schema_version", "device", "runtime", "precision", "batch", "units", "protocol",
                  "created_at", "hwnas_version", "space_hash", "calibration"):
        assert field in meta
    assert meta["units"] == "ms" and meta["runtime"]["provider"] is None


def test_save_is_atomic_and_leaves_no_temp_files(table, tmp_path):
    path = tmp_path / "lut.json"
    table.save(path)
    before = path.read_text()
    table.set("another", 0.3)
    table.save(path)
    assert path.read_text() != before
    assert sorted(os.listdir(tmp_path)) == ["lut.json"]
    with pytest.raises(OSError, match="no_such_dir"):
        table.save(tmp_path / "no_such_dir" / "lut.json")
    assert sorted(os.listdir(tmp_path)) == ["lut.json"]


def test_invalid_entries_and_metadata_are_refused(table):
    with pytest.raises(ValueError, match="bad-op"):
        table.set("bad-op", -1.0)
    with pytest.raises(ValueError, match="bad-op"):
        table.set("bad-op", math.inf)
    with pytest.raises(ValueError, match="units"):
        table.update_metadata(units="s")
    with pytest.raises(ValueError, match="scale"):
        table.set_calibration(0.0, 1.0)
    with pytest.raises(ValueError, match="median"):
        table.set("op", 1.0, mdian=2.0)


def test_missing_and_means(table):
    present = table.keys()[:3]
    assert table.missing(present + ["nope-1", "nope-2"]) == ["nope-1", "nope-2"]
    with pytest.raises(KeyError, match="nope-1"):
        table.means(present + ["nope-1"])
    np.testing.assert_allclose(table.means(present), [table.get(k)["mean"] for k in present])


def test_merge_policies():
    a, b = LatencyTable(), LatencyTable()
    a.set("shared", 1.0)
    a.set("only-a", 2.0)
    b.set("shared", 1.5)
    b.set("only-b", 3.0)
    with pytest.raises(ValueError, match="shared"):
        a.merge(b)
    a.merge(b, on_conflict="keep")
    assert a.mean("shared") == 1.0 and a.mean("only-b") == 3.0
    a.merge(b, on_conflict="replace")
    assert a.mean("shared") == 1.5
    with pytest.raises(ValueError, match="sometimes"):
        a.merge(b, on_conflict="sometimes")


@pytest.mark.parametrize("content, reason", [
    ("", "empty"),
    ('{"format": "hwnas-latency-table", "schema_version": 1, "metadata": {}, "entr', "truncated"),
    ("[1, 2, 3]", "object"),
    ('{"format": "other", "schema_version": 1, "metadata": {}, "entries": {}}', "format"),
    ('{"format": "hwnas-latency-table", "schema_version": 2, "metadata": {}, "entries": {}}', "newer"),
    ('{"format": "hwnas-latency-table", "schema_version": "1", "metadata": {}, "entries": {}}', "schema_version"),
    ('{"format": "hwnas-latency-table", "schema_version": 1, "metadata": {}}', "entries"),
    ('{"format": "hwnas-latency-table", "schema_version": 1, "metadata": {}, "entries": {"k": {"mean": -1, "n": 1}}}',
     "mean"),
    ('{"format": "hwnas-latency-table", "schema_version": 1, "metadata": {}, "entries": {"k": {"mean": 1, "n": 1, "x": 2}}}',
     "x"),
])
def test_bad_files_raise_clear_errors(tmp_path, content, reason):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        LatencyTable.load(path)
    assert str(path) in str(info.value) and reason in str(info.value)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.json"):
        LatencyTable.load(tmp_path / "absent.json")


def test_ten_thousand_fuzzed_files_fail_cleanly(tmp_path):
    """Truncated, bit-flipped, spliced and shuffled files: each loads or raises a clean error, never crashes."""
    source = random_table(get_space("tiny-mbv3"), [24], seed=1)
    source.set_calibration(1.05, 0.01)
    good = source.dumps().encode()
    rng = np.random.default_rng(1234)
    outcomes = {"loaded": 0, "ValueError": 0, "OSError": 0}
    path = tmp_path / "fuzz.json"
    for i in range(10_000):
        data = bytearray(good)
        kind = i % 5
        if kind == 0:
            data = data[: rng.integers(0, len(data))]
        elif kind == 1:
            for pos in rng.integers(0, len(data), rng.integers(1, 8)):
                data[pos] = int(rng.integers(0, 256))
        elif kind == 2:
            pos = int(rng.integers(0, len(data)))
            data[pos:pos] = bytes(rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8))
        elif kind == 3:
            start = int(rng.integers(0, len(data)))
            del data[start: start + int(rng.integers(1, 200))]
        else:
            pos = int(rng.integers(0, len(data)))
            data[pos:pos] = bytes(rng.choice(list(b'{}[]",:0-e.nulltruefalse\\u'), int(rng.integers(1, 6))))
        path.write_bytes(bytes(data))
        try:
            LatencyTable.load(path)
            outcomes["loaded"] += 1
        except ValueError as error:
            assert str(path) in str(error)
            outcomes["ValueError"] += 1
        except OSError:
            outcomes["OSError"] += 1
    assert sum(outcomes.values()) == 10_000
    assert outcomes["ValueError"] > 9_000


_HEADER = '{"format": "hwnas-latency-table", "schema_version": 1, "metadata": {}, "entries": '


@pytest.mark.parametrize("data, reason", [
    (b'\xff\xfe' + _HEADER.encode() + b'{}}', "not UTF-8"),
    (_HEADER.encode() + b'{"k\xc3": {"mean": 1, "n": 1}}}', "not UTF-8"),
    ((_HEADER + '{"k": {"mean": 1, "n": 1, "std": ' + "[" * 200 + "]" * 200 + "}}}").encode(), "nesting deeper"),
    ((_HEADER + '{"k": {"mean": ' + "[" * 5000 + "]" * 5000 + ", \"n\": 1}}}").encode(), "nesting deeper"),
    ((_HEADER + '{"k": {"mean": 1e999, "n": 1}}}').encode(), "does not fit in a double"),
    ((_HEADER + '{"k": {"mean": ' + "9" * 5000 + ', "n": 1}}}').encode(), "does not fit in a double"),
    ((_HEADER + '{"k": {"mean": NaN, "n": 1}}}').encode(), "NaN"),
    ((_HEADER + '{"k": {"mean": -Infinity, "n": 1}}}').encode(), "Infinity"),
    ((_HEADER + '{"k": {"mean": 1, "n": 1}, "k": {"mean": 2, "n": 1}}}').encode(), "duplicate key"),
    ((_HEADER + '{"\\ud800": {"mean": 1, "n": 1}}}').encode(), "surrogate"),
    ((_HEADER + '{"k": {"mean": 1, "n": 1.5}}}').encode(), '"n" must be an integer'),
    ((_HEADER + '{"k": {"mean": 1, "n": 1}}} trailing').encode(), "Extra data"),
    (b'{"format": "hwnas-latency-table", "schema_version": 0, "metadata": {}, "entries": {}}', "unsupported"),
    (b'{"format": "hwnas-latency-table", "schema_version": 1, "metadata": {"units": "s"}, "entries": {}}', "units"),
    (b'{"format": "hwnas-latency-table", "schema_version": 1, "metadata": {"calibration": {"scale": 0, "offset": 0}},'
     b' "entries": {}}', "scale"),
    (b'{"format": "hwnas-latency-table", "schema_version": 1, "metadata": {}, "entries": {}, "extra": 1}', "extra"),
])
def test_hostile_files_raise_an_error_naming_file_and_reason(tmp_path, data, reason):
    """What a strict reader must refuse that Python's json alone would accept or crash on."""
    path = tmp_path / "hostile.json"
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        LatencyTable.load(path)
    assert str(info.value).startswith(f"{path}: ") and reason in str(info.value)


def test_a_directory_is_refused_by_name(tmp_path):
    with pytest.raises(OSError, match=str(tmp_path)):
        LatencyTable.load(tmp_path)


def test_shipped_tables_survive_a_save_load_round_trip(tmp_path):
    for lut in sorted((ROOT / "device_profiles").glob("*/lut.json")):
        table = LatencyTable.load(lut)
        assert len(table) > 100 and table.source == str(lut)
        table.save(tmp_path / "copy.json")
        again = LatencyTable.load(tmp_path / "copy.json")
        assert again.keys() == table.keys() and again.metadata == table.metadata
        first = table.keys()[0]
        assert again.get(first) == table.get(first)
        assert json.loads((tmp_path / "copy.json").read_text()) == json.loads(table.dumps())
