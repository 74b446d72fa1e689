"""Other projects' asyncio test suites, run on ferroloop and on asyncio's loop.

    python scripts/external-suites.py [--suites anyio,uvloop,tornado,twisted,aiohttp] [--wheel W]

Each suite is a pinned release's own tests, downloaded from PyPI as its
sdist, run twice in a venv of its own: once on asyncio's loop, once on
ferroloop. The spec is asyncio, so a test that fails on both (no IPv6 here,
running as root) says nothing about ferroloop; a test that fails only on
ferroloop is a difference and fails this run, after a rerun of each such
test on both loops rules out timing flakes.

* anyio: its asyncio tests; ferroloop stands in as its "asyncio+uvloop"
  parametrisation (a `uvloop` shim package that is ferroloop).
* uvloop: its `Test_AIO_*` classes, the asyncio-semantics half of its
  suite (a conftest makes `AIOTestCase.new_loop` ferroloop's).
* tornado: its whole unittest suite through its own runner (which also
  fails a run that logs anything); its tests ship in the package.
* twisted: trial on its asyncio reactor (`twisted.internet.test`, whose
  reactor tests build one reactor of each kind).
  tornado and twisted run through drivers in scripts/external, with
  ferroloop given by the loop policy.
* aiohttp: its whole suite with `--aiohttp-loop=pyloop,uvloop`, the shim
  as `uvloop` (slow: about 15 minutes on two cores).

Everything lives under target/external (venvs, sdists, JUnit XML); nothing
touches the project venv. Nothing here copies other projects' code into
ferroloop: their tests run as they ship.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: name -> (sdist pin, packages its tests need)
SUITES = {
    "anyio": (
        "anyio==4.16.0",
        [
            "blockbuster>=1.5.29",
            "hypothesis",
            "psutil",
            "pytest",
            "pytest-mock",
            "pytest-timeout",
            "trustme",
            "truststore",
        ],
    ),
    "uvloop": ("uvloop==0.23.0", ["uvloop==0.23.0", "pytest", "pytest-timeout", "psutil", "pyopenssl", "aiohttp"]),
    "aiohttp": ("aiohttp==3.14.5", ["aiohttp==3.14.5"]),
    "tornado": ("tornado==6.6.1", ["tornado==6.6.1"]),
    "twisted": ("twisted==26.10.0", ["twisted[test,tls]==26.10.0"]),
}

SHIM = '''"""ferroloop under uvloop's name, for suites that pick a loop by importing uvloop."""
from ferroloop import *  # noqa: F403
from ferroloop import EventLoopPolicy, Loop, loop, new_event_loop, run  # noqa: F401
'''

UVLOOP_CONFTEST = """# Written by ferroloop's scripts/external-suites.py: AIOTestCase on ferroloop.
import os
from uvloop import _testbase as tb

if os.environ.get("EXTERNAL_LOOP") == "ferroloop":
    import ferroloop
    tb.AIOTestCase.new_loop = lambda self: ferroloop.new_event_loop()
    tb.BaseTestCase.is_asyncio_loop = lambda self: True
"""


def run(cmd, **kw) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], **kw)


def make_venv(work: Path, name: str) -> Path:
    """A venv per suite and CPython; its python."""
    tag = f"{sys.version_info[0]}.{sys.version_info[1]}"
    venv = work / f"venv-{name}-{tag}"
    py = venv / "bin" / "python"
    if not py.exists() and run([sys.executable, "-m", "venv", venv]):
        sys.exit(f"external: cannot create {venv}")
    return py


def install(py: Path, name: str, wheel: str, packages: list[str], extra_reqs=None) -> None:
    """The suite's test needs, then ferroloop's wheel over whatever they pulled in."""
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if run([*pip, *packages, *(["-r", extra_reqs] if extra_reqs else [])]):
        sys.exit(f"external: cannot install the {name} suite's test packages")
    if run([*pip, "--force-reinstall", "--no-deps", wheel]):
        sys.exit(f"external: cannot install {wheel}")


def sdist(py: Path, work: Path, pin: str) -> Path:
    """The pinned release's sdist (with its tests), downloaded and extracted once."""
    name, version = pin.split("==")
    sdists = work / "sdists"
    dest = sdists / f"{name}-{version}"
    if not dest.exists():
        sdists.mkdir(parents=True, exist_ok=True)
        download = [py, "-m", "pip", "download", "-q", "--disable-pip-version-check"]
        if run([*download, "--no-binary", ":all:", "--no-deps", pin, "-d", sdists]):
            sys.exit(f"external: cannot download {pin}")
        with tarfile.open(sdists / f"{name}-{version}.tar.gz") as tar:
            tar.extractall(sdists, filter="data")
    return dest


def outcomes(xml_path: Path) -> tuple[set[str], set[str]]:
    """(every test id, the failed or errored ones) from a JUnit XML report."""
    ran, bad = set(), set()
    if not xml_path.exists():
        return ran, bad
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        tid = f"{case.get('classname')}::{case.get('name')}"
        if case.find("skipped") is not None:
            continue
        ran.add(tid)
        if case.find("failure") is not None or case.find("error") is not None:
            bad.add(tid)
    return ran, bad


def pytest_run(py: Path, cwd: Path, args: list[str], xml: Path, env: dict) -> None:
    """One pytest session, its output kept beside its report. A session that
    did not run its tests (exit status other than 0 or 1: a collection
    error, an internal error, no tests) ends this run: a suite that cannot
    run must not pass."""
    xml.unlink(missing_ok=True)
    log = xml.with_suffix(".log")
    with open(log, "w") as out:
        status = run(
            [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "120", f"--junitxml={xml}", *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if status not in (0, 1) or not xml.exists():
        print("".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:]))
        sys.exit(f"external: pytest exited with status {status} (whole output: {log})")


class Suite:
    """One suite: how to run it on each loop, and how its test ids pair up."""

    def __init__(self, name, py, cwd, work):
        self.name, self.py, self.cwd, self.work = name, py, cwd, work

    def runs(self, selection=None) -> dict[str, tuple[set[str], set[str]]]:
        raise NotImplementedError

    def same(self, tid: str) -> str:
        """The test id with the loop's name taken out, to pair the runs."""
        return tid

    def nodes(self, tid: str) -> list[str]:
        """The pytest node ids that rerun `tid` on both loops."""
        raise NotImplementedError


class Parametrised(Suite):
    """A suite that runs both loops in one session, as a parametrisation:
    `ours`/`theirs` are the loops' tokens in a test id's brackets."""

    ours: str
    theirs: str
    args: list[str]

    def loop_of(self, tid: str) -> str | None:
        tokens = tid.rpartition("[")[2].rstrip("]").split("-") if "[" in tid else []
        if self.ours in tokens:
            return "ferroloop"
        return "asyncio" if self.theirs in tokens else None

    def runs(self, selection=None):
        xml = self.work / f"{self.name}.xml"
        env = {"PYTHONPATH": str(self.work / "shim")}
        pytest_run(self.py, self.cwd, self.args if selection is None else selection, xml, env)
        ran, bad = outcomes(xml)
        split = {}
        for loop in ("ferroloop", "asyncio"):
            mine = {t for t in ran if self.loop_of(t) == loop}
            split[loop] = (mine, bad & mine)
        return split

    def same(self, tid):
        head, _, params = tid.rpartition("[")
        tokens = ["LOOP" if t in (self.ours, self.theirs) else t for t in params.rstrip("]").split("-")]
        return f"{head}[{'-'.join(tokens)}]"

    def nodes(self, tid: str) -> list[str]:
        """The pytest node ids of `tid` on both loops."""
        classname, name = tid.split("::", 1)
        parts = classname.split(".")
        node = tid
        for i in range(len(parts), 0, -1):  # the module path, then the class if any
            path = Path(self.cwd, *parts[:i]).with_suffix(".py")
            if path.exists():
                node = "::".join([str(path.relative_to(self.cwd)), *parts[i:], name])
                break
        head, _, params = node.rpartition("[")
        both = []
        for loop in (self.ours, self.theirs):
            tokens = [loop if t in (self.ours, self.theirs) else t for t in params.rstrip("]").split("-")]
            both.append(f"{head}[{'-'.join(tokens)}]")
        return both


class Anyio(Parametrised):
    ours, theirs = "asyncio+uvloop", "asyncio"
    args = ["-k", "asyncio and not eager", "tests"]


class Aiohttp(Parametrised):
    ours, theirs = "uvloop", "pyloop"
    args = [
        "-o",
        "addopts=",
        "-n",
        "2",
        "-m",
        "not dev_mode and not autobahn and not internal",
        "--aiohttp-loop=pyloop,uvloop",
        "tests",
    ]


class Uvloop(Suite):
    def runs(self, selection=None):
        split = {}
        for loop in ("ferroloop", "asyncio"):
            xml = self.work / f"uvloop-{loop}.xml"
            args = ["-k", "AIO", "tests"] if selection is None else [*selection]
            pytest_run(self.py, self.cwd, args, xml, {"EXTERNAL_LOOP": loop})
            split[loop] = outcomes(xml)
        return split

    def nodes(self, tid: str) -> list[str]:
        classname, name = tid.split("::", 1)
        module, cls = classname.rsplit(".", 1)
        return [f"{module.replace('.', '/')}.py::{cls}::{name}"]


class Driven(Suite):
    """A suite run by its own runner through a driver in scripts/external,
    once per loop; it writes JUnit XML. A failure is rerun with its whole
    module: some tests pass or fail by what ran before them in the same
    process (tornado's circlerefs_test passes alone)."""

    args: list[str] = []

    def runs(self, selection=None):
        split = {}
        for loop in ("ferroloop", "asyncio"):
            xml = self.work / f"{self.name}-{loop}.xml"
            xml.unlink(missing_ok=True)
            log = xml.with_suffix(".log")
            env = {**os.environ, "EXTERNAL_LOOP": loop, "EXTERNAL_XML": str(xml)}
            rundir = self.work / f"{self.name}-run"
            rundir.mkdir(exist_ok=True)
            with open(log, "w") as out:
                status = run(
                    [self.py, ROOT / "scripts" / "external" / f"{self.name}_driver.py", *(selection or self.args)],
                    cwd=rundir,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            if not xml.exists():
                print("".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:]))
                sys.exit(f"external: {self.name}'s runner exited with status {status} (whole output: {log})")
            split[loop] = outcomes(xml)
        return split

    def nodes(self, tid: str) -> list[str]:
        classname, name = tid.split("::", 1)
        if classname.endswith(".Run"):
            return list(self.args)  # a whole run's verdict: rerun it all
        return [classname.rsplit(".", 1)[0]]


class Tornado(Driven):
    """Its whole suite (tests ship in the package)."""


class Twisted(Driven):
    """trial on its asyncio reactor: the reactor tests, which build one
    reactor of each kind per test. Not `twisted.test`: run as root, its
    `test_cantChangeFileMode` leaves /dev/null mode 0555 (it did here)."""

    args = ["twisted.internet.test"]


def prepare(name: str, work: Path, wheel: str) -> Suite:
    pin, packages = SUITES[name]
    py = make_venv(work, name)
    if name in ("tornado", "twisted"):  # their tests ship in the package
        install(py, name, wheel, packages)
        return (Tornado if name == "tornado" else Twisted)(name, py, work, work)
    src = sdist(py, work, pin)
    shim = work / "shim" / "uvloop"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text(SHIM)
    if name == "anyio":
        install(py, name, wheel, [*packages, str(src)])
        return Anyio(name, py, src, work)
    # The sdist's own package directory would shadow the installed (compiled)
    # package: their tests run from a copy.
    rundir = work / f"{name}-run"
    shutil.rmtree(rundir, ignore_errors=True)
    shutil.copytree(src / "tests", rundir / "tests")
    if name == "uvloop":
        install(py, name, wheel, packages)
        (rundir / "conftest.py").write_text(UVLOOP_CONFTEST)
        return Uvloop(name, py, rundir, work)
    shutil.copy(src / "pytest.ini", rundir)
    install(py, name, wheel, packages, extra_reqs=str(src / "requirements" / "test.txt"))
    return Aiohttp(name, py, rundir, work)


def compare(suite: Suite) -> list[str]:
    """The tests failing on ferroloop only, each rerun once on both loops."""
    split = suite.runs()
    (f_ran, f_bad), (a_ran, a_bad) = split["ferroloop"], split["asyncio"]
    if not f_ran or not a_ran:
        print(f"{suite.name}: no test ran on {'ferroloop' if not f_ran else 'asyncio'}")
        return ["no test ran"]
    a_bad_ids = {suite.same(t) for t in a_bad}
    only = sorted(t for t in f_bad if suite.same(t) not in a_bad_ids)
    print(
        f"{suite.name}: ferroloop {len(f_ran) - len(f_bad)}/{len(f_ran)} passed, "
        f"asyncio {len(a_ran) - len(a_bad)}/{len(a_ran)}; failing on ferroloop only: {len(only)}"
    )
    if not only:
        return []
    again = suite.runs(sorted({n for t in only for n in suite.nodes(t)}))
    still = sorted(
        t for t in again["ferroloop"][1] if suite.same(t) not in {suite.same(x) for x in again["asyncio"][1]}
    )
    for t in only:
        print(f"  {'DIFFERS' if t in still else 'flaky (passed on rerun)'}: {t}")
    return still


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suites", default="anyio,uvloop,tornado", help="comma-separated subset of: " + ",".join(SUITES)
    )
    parser.add_argument("--wheel", help="ferroloop wheel (default: dist/'s, then target/wheels', for this CPython)")
    parser.add_argument("--workdir", default=str(ROOT / "target" / "external"))
    opts = parser.parse_args()
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    wheel = opts.wheel
    for pattern in (f"dist/ferroloop-*-{tag}-*.whl", f"target/wheels/ferroloop-*-{tag}-*.whl"):
        wheel = wheel or next(iter(sorted(glob.glob(str(ROOT / pattern)))), None)
    if wheel is None:
        sys.exit(f"external: no ferroloop wheel for {tag} in dist/ or target/wheels (make wheels, or --wheel)")
    work = Path(opts.workdir)
    work.mkdir(parents=True, exist_ok=True)
    differ = []
    for name in opts.suites.split(","):
        differ += [f"{name}: {t}" for t in compare(prepare(name, work, wheel))]
    if differ:
        print(textwrap.indent("\n".join(differ), "DIFFERS "))
        return 1
    print("external suites: ferroloop fails nothing asyncio passes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
