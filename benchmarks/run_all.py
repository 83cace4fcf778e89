"""``make bench``: run every benchmark script and rewrite benchmarks/RESULTS.md from what they print.

Each script prints its own markdown section with ratios against a baseline it ran side by side; this
runner only adds the machine header, so the file never holds a number nobody measured.
Heavy scripts (a line ``HEAVY = True``: supernet training, ~1 h) run only with ``HWNAS_BENCH_HEAVY=1``;
otherwise the sections they wrote when last run (``benchmarks/sections/<script>*.md``, each stating
its date, machine, load and command) are included as they are.

``--reuse`` runs nothing: it rebuilds RESULTS.md and the README table from the saved heavy sections and the
light sections already in RESULTS.md (keeping its header, which names where those were measured) — for
when a heavy section has just been re-measured and the machine is not the one the light ones ran on.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = HERE / "sections"


def is_heavy(script: Path) -> bool:
    return any(line.startswith("HEAVY = True") for line in script.read_text(encoding="utf-8").splitlines())


def script_title(script: Path) -> str | None:
    """A heavy script's section title (a line ``TITLE = "..."``) when it saves several parts, e.g. one per schedule."""
    for line in script.read_text(encoding="utf-8").splitlines():
        match = re.match(r'TITLE = "(.+)"', line)
        if match:
            return match.group(1)
    return None


def saved_sections(script: Path) -> str:
    """The section a heavy script last saved; several saved parts become ``###`` parts of one section."""
    files = sorted(SECTIONS.glob(f"{script.stem}*.md"))
    if not files:
        return f"## {script.name}\n\nNot run yet: `python benchmarks/{script.name}` (heavy; see its docstring).\n"
    parts = [f.read_text(encoding="utf-8").strip() for f in files]
    if len(parts) == 1:
        return parts[0] + "\n"
    title = script_title(script) or script.stem
    demoted = [re.sub(r"^## ", "### ", part, count=1) for part in parts]
    return f"## {title} (`benchmarks/{script.name}`)\n\n" + "\n\n".join(demoted) + "\n"


def stamped(text: str, line: str) -> str:
    """Each ``##`` section of ``text`` with ``line`` (its date and machine) under its title unless it states one."""
    out = []
    for section in re.split(r"^(?=## )", text, flags=re.MULTILINE):
        if section.startswith("## ") and "Measured on " not in section:
            title, _, body = section.partition("\n")
            section = f"{title}\n\n{line}\n{body if body.startswith(chr(10)) else chr(10) + body}"
        out.append(section)
    return "".join(out)


def header_machine(header: str) -> str:
    """"Measured on DATE: CPU, N cores." from a RESULTS.md header written by make bench."""
    match = re.search(r"on (\d{4}-\d{2}-\d{2}): ([^,]+), (\d+) cores", header)
    return f"Measured on {match.group(1)}: {match.group(2)}, {match.group(3)} cores." if match else "Measured on an unknown day."


def light_sections_in(results: str) -> dict[str, str]:
    """The sections of an existing RESULTS.md by the script named in their title (``benchmarks/NAME.py``)."""
    found: dict[str, list[str]] = {}
    for section in re.split(r"^(?=## )", results, flags=re.MULTILINE):
        match = re.match(r"## .*?`benchmarks/([\w-]+\.py)", section)
        if match:
            found.setdefault(match.group(1), []).append(section.strip())
    return {name: "\n\n".join(parts) + "\n" for name, parts in found.items()}


def reuse(scripts: list[Path]) -> int:
    """Rebuild RESULTS.md (its header kept) and the README table without running any benchmark."""
    results = (HERE / "RESULTS.md").read_text(encoding="utf-8")
    header = results.split("\n## ", 1)[0].rstrip() + "\n"
    light = light_sections_in(results)
    sections = [saved_sections(s) if is_heavy(s)
                else stamped(light.get(s.name, f"## {s.name}\n\nNot run yet: `make bench`.\n"), header_machine(header))
                for s in scripts]
    write_results(header, sections)
    return 0


def write_results(header: str, sections: list[str]) -> None:
    with tempfile.NamedTemporaryFile("w", dir=HERE, delete=False, suffix=".tmp", encoding="utf-8") as handle:
        handle.write(header + "\n" + "\n".join(sections))
    os.replace(handle.name, HERE / "RESULTS.md")
    update_readme(sections)


def save_section(stem: str, text: str) -> None:
    """A heavy script's section, saved for ``make bench`` to reuse (``sections/<stem>.md``) and printed."""
    SECTIONS.mkdir(exist_ok=True)
    (SECTIONS / f"{stem}.md").write_text(text + "\n", encoding="utf-8")
    print(text)


def measured_on() -> str:
    """"Measured on DATE: CPU, N cores." for heavy sections, which make bench reuses on other machines and days."""
    return f"Measured on {dt.date.today().isoformat()}: {cpu_model()}, {os.cpu_count()} cores."


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


README = HERE.parent / "README.md"
BEGIN, END = "<!-- results:begin (make bench writes this table from benchmarks/RESULTS.md) -->", "<!-- results:end -->"


def headline_rows(sections: list[str]) -> list[str]:
    """One README row per benchmark section: its title and its goal lines (sentences that start with "Goal"),
    each goal under a ``###`` part prefixed with that part's name."""
    rows = []
    for text in sections:
        for section in re.split(r"^(?=## )", text, flags=re.MULTILINE):
            lines = section.strip().splitlines()
            if not lines or not lines[0].startswith("## "):
                continue
            title, part, goals = lines[0][3:].strip(), "", []
            for line in (line.strip() for line in lines[1:]):
                if line.startswith("### "):
                    part = re.sub(r"\s*\(`benchmarks/[\w-]+\.py`\)$", "", line[4:].strip())
                elif line.startswith("Goal"):
                    goals.append(f"{part}: {first_sentence(line)}" if part else first_sentence(line))
            if goals:
                escaped = " ".join(goals).replace("|", "\\|").replace("**", "")
                rows.append(f"| {title} | {escaped} |")
    return rows


def first_sentence(line: str) -> str:
    """Up to the first full stop that ends a sentence (not a decimal point)."""
    for index, char in enumerate(line):
        if char == "." and (index + 1 == len(line) or line[index + 1] == " "):
            return line[:index + 1]
    return line


def update_readme(sections: list[str]) -> None:
    """Rewrite the README's results table (between the markers) from the sections just written."""
    text = README.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return
    table = "\n".join(["| benchmark | goal and result |", "|---|---|", *headline_rows(sections)])
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with tempfile.NamedTemporaryFile("w", dir=README.parent, delete=False, suffix=".tmp", encoding="utf-8") as handle:
        handle.write(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    os.replace(handle.name, README)


def main() -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))
    if "--reuse" in sys.argv[1:]:
        return reuse(scripts)
    sections = []
    failed = []
    heavy = os.environ.get("HWNAS_BENCH_HEAVY") == "1"
    for script in scripts:
        if is_heavy(script) and not heavy:
            print(f"reusing the saved sections of {script.name} (heavy; HWNAS_BENCH_HEAVY=1 re-measures)", flush=True)
            sections.append(saved_sections(script))
            continue
        print(f"running {script.name} ...", flush=True)
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=HERE.parent)
        if result.returncode != 0:
            failed.append(script.name)
            sections.append(f"## {script.name}\n\nFAILED (exit {result.returncode}):\n\n```\n{result.stderr[-3000:]}\n```\n")
        else:
            sections.append(stamped(result.stdout.strip() + "\n", measured_on()))
    import torch

    header = (
        "# Benchmark results\n\n"
        f"Written by `make bench` on {dt.date.today().isoformat()}: {cpu_model()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}. Every ratio compares two methods run "
        "side by side in the same process; absolute numbers move with machine load (noted per section). Heavy "
        "sections are reused from their last run and name the day and machine they were measured on.\n"
    )
    write_results(header, sections)
    print(f"wrote {HERE / 'RESULTS.md'} and the README's results table" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
