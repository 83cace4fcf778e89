"""The Python blocks of the README and of the docs it links to run as written (in order, one namespace,
in a scratch folder)."""
from __future__ import annotations

import re
import shutil

from conftest import ROOT

PAGES = ["README.md", "docs/python_api.md", "docs/search.md", "docs/training.md", "docs/ofa.md"]  # in the order they run


def python_blocks() -> list[tuple[str, str]]:
    return [(page, block) for page in PAGES
            for block in re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(encoding="utf-8"), flags=re.S)]


def test_every_page_with_python_is_run():
    pages = {str(path.relative_to(ROOT)) for path in (ROOT / "docs").rglob("*.md") if "```python" in path.read_text()}
    assert pages <= set(PAGES)


def test_readme_python_blocks_run(note10_dir, tmp_path, monkeypatch):
    for resolution in (160, 176):  # the files the README's import example names
        shutil.copy(note10_dir / f"{resolution}_lookup_table.yaml", tmp_path)
    (tmp_path / "device_profiles").symlink_to(ROOT / "device_profiles")  # the shipped LUTs the README names
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    assert len(blocks) >= 5
    namespace: dict = {}
    for number, (page, block) in enumerate(blocks, 1):
        try:
            exec(compile(block, f"{page} python block {number}", "exec"), namespace)  # noqa: S102
        except Exception as error:  # pragma: no cover - the message is the point
            raise AssertionError(f"{page} python block {number} failed: {error!r}\n{block}") from error
    assert namespace["latency_ms"].shape == (100_000,)
    assert (tmp_path / "supernet.safetensors").exists()
    report = namespace["report"]  # the whole job: trained, searched, exported and verified
    assert report["passed"] and set(report["formats"]) == {"onnx", "tflite"}
    assert (tmp_path / "runs" / "api" / "bundle" / "run.py").exists()
