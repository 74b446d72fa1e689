"""Print one table of the per-version test runs (scripts/test-all.sh).

    python3 scripts/version-summary.py [VERSION...]

Reads target/results/<version>/unit.xml (pytest's JUnit XML) and
conformance.json (tests.conformance --json); exits 1 if a version has a
failure, a new conformance failure, or no results at all.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "target" / "results"


def unit_counts(path: Path) -> dict | None:
    if not path.exists():
        return None
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    total["passed"] = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return total


def conformance_counts(path: Path) -> dict | None:
    if not path.exists():
        return None
    return json.loads(path.read_text())["total"]


def main(versions: list[str]) -> int:
    if not versions:
        versions = sorted((p.name for p in RESULTS.iterdir() if p.is_dir()), key=lambda v: tuple(map(int, v.split("."))))
    ok = True
    header = ("| CPython | tests passed | failed | skipped | conformance passed | failed (new) "
              "| skipped | known failures | not installed |")
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for ver in versions:
        d = RESULTS / ver
        unit = unit_counts(d / "unit.xml")
        conf = conformance_counts(d / "conformance.json")
        missing = (d / "missing-packages").read_text().split() if (d / "missing-packages").exists() else []
        cells = [ver]
        if unit is None:
            cells += ["not run", "-", "-"]
            ok = False
        else:
            bad = unit["failures"] + unit["errors"]
            ok &= bad == 0
            cells += [str(unit["passed"]), str(bad), str(unit["skipped"])]
        if conf is None:
            cells += ["not run", "-", "-", "-"]
            ok = False
        else:
            ok &= conf["new"] == 0
            failed = conf["failed"] + conf["errors"]
            cells += [f"{conf['passed']}/{conf['tests']}", f"{failed} ({conf['new']})",
                      str(conf["skipped"]), str(conf["known"])]
        cells.append(", ".join(missing) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    print("\nverdict:", "PASS on every CPython" if ok else "FAIL (see the table and the logs above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
