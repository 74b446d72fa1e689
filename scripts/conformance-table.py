"""Markdown table of the conformance counts of every version run
(target/results/<version>/conformance.json, written by scripts/test-all.sh):
one row per module, one column per CPython, "passed/tests" with known
failures and skips noted.

    python3 scripts/conformance-table.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "target" / "results"


def main() -> None:
    runs = {}
    for d in sorted(RESULTS.iterdir(), key=lambda p: tuple(map(int, p.name.split(".")))):
        f = d / "conformance.json"
        if f.exists():
            runs[d.name] = json.loads(f.read_text())
    modules: list[str] = []
    for data in runs.values():
        modules += [m for m in data["modules"] if m not in modules]

    def cell(c: dict | None) -> str:
        if c is None:
            return "-"
        text = f"{c['passed']}/{c['tests']}"
        notes = []
        if c["known"]:
            notes.append(f"{c['known']} known")
        if c["new"]:
            notes.append(f"**{c['new']} new**")
        if c["skipped"]:
            notes.append(f"{c['skipped']} skip")
        return text + (f" ({', '.join(notes)})" if notes else "")

    print("| module | " + " | ".join(f"CPython {v}" for v in runs) + " |")
    print("|---" * (len(runs) + 1) + "|")
    for m in modules:
        print(f"| {m} | " + " | ".join(cell(r["modules"].get(m)) for r in runs.values()) + " |")
    print("| **total** | " + " | ".join(f"**{cell(r['total'])}**" for r in runs.values()) + " |")


if __name__ == "__main__":
    main()
