"""The README's results table: one row per benchmark section, goal sentences only, pipes escaped."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("run_all", Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py")
run_all = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(run_all)


def test_every_section_of_a_script_gets_its_own_row():
    quick = "## Training, quick\n\nsome table\n\nGoal (≤ 30 min): met. Details follow.\n"
    standard = "## Training, standard\n\nGoal (≤ 3 h): not measured yet.\n"
    deploy = "## Deploy\n\n| a | b |\n\nGoal (within 10%): 3/4 (mean |error| 2.5%) as stored. More.\n"
    rows = run_all.headline_rows([quick + "\n" + standard, deploy, "## No goal\n\nJust numbers.\n"])
    assert rows == ["| Training, quick | Goal (≤ 30 min): met. |",
                    "| Training, standard | Goal (≤ 3 h): not measured yet. |",
                    "| Deploy | Goal (within 10%): 3/4 (mean \\|error\\| 2.5%) as stored. |"]


def test_reuse_rebuilds_results_from_saved_heavy_sections_and_existing_light_ones(tmp_path, monkeypatch):
    (tmp_path / "sections").mkdir()
    (tmp_path / "light.py").write_text("print('## Light')\n")
    (tmp_path / "heavy.py").write_text("HEAVY = True\n")
    (tmp_path / "sections" / "heavy.md").write_text("## Heavy (`benchmarks/heavy.py`)\n\nGoal (x): met now.\n")
    (tmp_path / "RESULTS.md").write_text(
        "# Benchmark results\n\nWritten by `make bench` on 2026-12-01: Some CPU.\n\n"
        "## Light (`benchmarks/light.py`)\n\n| t | 1 |\n\nGoal (y): 3/3.\n\n"
        "## Heavy (`benchmarks/heavy.py`)\n\nGoal (x): not measured yet.\n")
    (tmp_path / "README.md").write_text(f"intro\n{run_all.BEGIN}\nold table\n{run_all.END}\nrest\n")
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    monkeypatch.setattr(run_all, "SECTIONS", tmp_path / "sections")
    monkeypatch.setattr(run_all, "README", tmp_path / "README.md")
    assert run_all.reuse([tmp_path / "heavy.py", tmp_path / "light.py"]) == 0
    results = (tmp_path / "RESULTS.md").read_text()
    assert results.startswith("# Benchmark results\n\nWritten by `make bench` on 2026-12-01: Some CPU.\n")
    assert "Goal (x): met now." in results and "not measured yet" not in results
    assert "| t | 1 |\n\nGoal (y): 3/3." in results
    readme = (tmp_path / "README.md").read_text()
    assert "| Heavy (`benchmarks/heavy.py`) | Goal (x): met now. |" in readme and "old table" not in readme
    assert readme.startswith("intro\n") and readme.endswith("rest\n")
