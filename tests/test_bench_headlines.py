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
