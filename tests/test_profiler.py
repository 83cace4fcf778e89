"""Profiling bookkeeping: complete LUTs with metadata, durable journal, kill-and-resume without loss or duplicates."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from hwnas.journal import Journal
from hwnas.latency import LatencyPredictor, LatencyTable
from hwnas.latency.profiler import JOURNAL_NAME, LUT_NAME, profile
from hwnas.latency.protocol import Protocol
from hwnas.latency.targets import get_target, target_names
from hwnas.space import get_space

from conftest import ROOT
from fake_target import FakeTarget

QUICK = Protocol.quick()


def entry_lines(path):
    """Entries of complete journal lines (a writer may be mid-line while the test polls)."""
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()[1:]]


def test_profile_writes_a_complete_lut_with_metadata(tmp_path):
    space = get_space("tiny-mbv3")
    table = profile(space, FakeTarget(), tmp_path, resolutions=[24, 32], protocol=QUICK, passes=2, progress=False)
    assert LatencyTable.load(tmp_path / LUT_NAME).keys() == table.keys()
    assert set(table.keys()) == {sig.key for sig in space.all_signatures([24, 32])}
    meta = table.metadata
    assert meta["runtime"]["name"] == "fake" and meta["runtime"]["threads"] == 1
    assert meta["space_hash"] == space.content_hash and meta["resolutions"] == [24, 32]
    assert meta["protocol"]["passes"] == 2 and "trimm" in meta["protocol"]["additive_value"]
    assert len(meta["host"]["load_avg"]) == 3 and meta["host"]["cores"] >= 1
    assert LatencyPredictor(space, table).served_resolutions == [24, 32]
    entry = table.get(table.keys()[0])
    assert all(entry[f] is not None for f in ("median", "std", "p5", "p95", "min")) and entry["n"] >= 5
    lines = entry_lines(tmp_path / JOURNAL_NAME)
    assert len(lines) == 2 * len(table)
    assert len({(line["key"], line["pass"]) for line in lines}) == len(lines)


def test_torn_last_line_is_dropped_and_run_continues(tmp_path):
    space = get_space("tiny-mbv3")
    profile(space, FakeTarget(), tmp_path, resolutions=[24], protocol=QUICK, passes=1, progress=False)
    journal = tmp_path / JOURNAL_NAME
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-3]) + lines[-3][: len(lines[-3]) // 2])  # lose 2 entries, tear a third
    table = profile(space, FakeTarget(), tmp_path, resolutions=[24], protocol=QUICK, passes=1, progress=False)
    entries = entry_lines(journal)
    assert len(entries) == len(table) == len({e["key"] for e in entries})


def test_journal_of_another_run_is_refused(tmp_path):
    space = get_space("tiny-mbv3")
    profile(space, FakeTarget(), tmp_path, resolutions=[24], protocol=QUICK, passes=1, progress=False)
    with pytest.raises(ValueError, match="different run.*resolutions"):
        profile(space, FakeTarget(), tmp_path, resolutions=[32], protocol=QUICK, passes=1, progress=False)
    (tmp_path / JOURNAL_NAME).write_text('{"type": "header"}\n{not json}\n{"type": "entry"}\n')
    with pytest.raises(ValueError, match=":2: corrupt journal line"):
        Journal(tmp_path / JOURNAL_NAME, {})


KILLABLE = """
import sys
sys.path.insert(0, {tests!r})
from fake_target import FakeTarget
from hwnas.latency.profiler import profile
from hwnas.latency.protocol import Protocol
from hwnas.space import get_space
profile(get_space("tiny-mbv3"), FakeTarget(sleep_s=0.01), {out!r}, resolutions=[24, 32],
        protocol=Protocol.quick(), passes=2, progress=False)
"""


def test_kill_and_resume_loses_at_most_one_entry_and_duplicates_none(tmp_path):
    space = get_space("tiny-mbv3")
    total = 2 * len(space.all_signatures([24, 32]))
    journal = tmp_path / JOURNAL_NAME
    script = KILLABLE.format(tests=str(ROOT / "tests"), out=str(tmp_path))
    for kill_after in (15, 60):
        process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
        deadline = time.time() + 60
        while time.time() < deadline and (not journal.exists() or len(entry_lines(journal)) < kill_after):
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        before = len(entry_lines(journal))
        assert kill_after <= before < total
    table = profile(space, FakeTarget(), tmp_path, resolutions=[24, 32], protocol=QUICK, passes=2, progress=False)
    entries = entry_lines(journal)
    assert len(entries) == total
    assert len({(e["key"], e["pass"]) for e in entries}) == total
    assert len(table) == total // 2


def test_targets_are_registered_and_cuda_skips_cleanly():
    assert {"ort-cpu", "tflite", "torch-cuda"} <= set(target_names())
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            get_target("torch-cuda")
    with pytest.raises(ValueError, match="unknown target 'tpu'"):
        get_target("tpu")


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA device")
def test_cuda_target_times_an_op():
    from hwnas.latency.protocol import measure

    space = get_space("tiny-mbv3")
    target = get_target("torch-cuda")
    sig = space.signatures(space.max_arch())[3]
    with target.runner(target.build_op(sig)) as runner:
        result = measure(runner, QUICK)
    assert result.mean > 0 and result.n >= 5
    assert target.describe()["timer"] == "cuda events"
