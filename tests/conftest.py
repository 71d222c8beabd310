"""Shared fixtures: one demo build per test session, in a temporary ZI_DATA_DIR."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ZI = str(Path(sys.executable).parent / "zi")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for servers the tests start)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_group(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM to a process started with ``start_new_session=True`` and its group; SIGKILL when it hangs."""
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def zi_env(data_dir: Path) -> dict[str, str]:
    """The environment of a `zi` command on ``data_dir``: its own Dagster instance (``<data_dir>/dagster``)."""
    env = {
        **os.environ,
        "ZI_DATA_DIR": str(data_dir),
        "DO_NOT_TRACK": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "COLUMNS": "200",
    }
    env.pop("DAGSTER_HOME", None)
    return env


#: Fixtures that build the demo (minutes): tests using them count as slow (``make test-fast`` leaves them out).
BUILD_FIXTURES = {"demo_build", "demo_data_dir", "demo_build_again"}


def pytest_collection_modifyitems(items):
    waiting = set()  # files with a test that waits for a shared build
    for item in items:
        if BUILD_FIXTURES & set(getattr(item, "fixturenames", ())):
            waiting.add(item.path)
        if BUILD_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.slow)
    # Files that wait for the shared builds last (each file's tests in their order; xdist hands out whole files
    # in this order): the workers run everything else while the builds run, instead of waiting for them.
    items.sort(key=lambda item: item.path in waiting)


@pytest.fixture(autouse=True, scope="session")
def _no_shared_dagster_home():
    """`make test` exports the repository's DAGSTER_HOME; each test data directory gets its own instance."""
    previous = os.environ.pop("DAGSTER_HOME", None)
    yield
    if previous is not None:
        os.environ["DAGSTER_HOME"] = previous


@pytest.fixture(autouse=True)
def _dagster_home_per_test():
    """ensure_instance() points DAGSTER_HOME at a test's own instance; the next test must not inherit it (its
    `zi` processes would record their runs in the earlier test's instance)."""
    before = os.environ.get("DAGSTER_HOME")
    yield
    if before is None:
        os.environ.pop("DAGSTER_HOME", None)
    else:
        os.environ["DAGSTER_HOME"] = before


def run_zi(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = zi_env(data_dir)
    result = subprocess.run([ZI, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"zi {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


#: Whole demo builds the tests share, by fixture name -> folder in _background_root(): `zi build` of the default
#: demo on an empty landing area, started in the background as soon as the tests are known (beside the folder:
#: .started, .out, .err and .rc, its exit code, when it ends). ``demo_build_again`` is a second, independent
#: build of the same demo, for the determinism test.
BACKGROUND_BUILDS = {"demo_build": "zi_data_demo", "demo_build_again": "zi_data_demo_again"}
_background: list[subprocess.Popen] = []  # the builds this process started


def _background_root(config) -> Path:
    """The folder of the session's shared builds: with xdist the parent of every worker's own temporary folder
    (pytest-<n>/), so that the workers of one `make test` share them."""
    base = config._tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _start_build(root: Path, folder: str) -> None:
    """`zi build` into ``root/folder`` in the background, once per session: the first process to get here
    starts it (under a lock), later ones find it started."""
    import fcntl

    with open(root / f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        started = root / f"{folder}.started"
        if started.exists():
            return
        started.touch()
        data_dir = root / folder
        script = '"$0" build > "$1.out" 2> "$1.err"; echo $? > "$1.rc.tmp" && mv "$1.rc.tmp" "$1.rc"'
        _background.append(
            subprocess.Popen(
                ["sh", "-c", script, ZI, str(data_dir)], cwd=REPO_ROOT, env=zi_env(data_dir), start_new_session=True
            )
        )


def pytest_collection_finish(session):
    """Start the shared builds the tests need as soon as the tests are known: the workers run other tests
    meanwhile, instead of each building its own or one waiting idle for the other's."""
    needed = set().union(*(getattr(item, "fixturenames", ()) for item in session.items))
    if "demo_data_dir" in needed:  # asks for demo_build when it runs, unless ZI_QUALITY_DEMO_DATA_DIR names one
        needed.add("demo_build")
    if os.environ.get("ZI_QUALITY_DEMO_DATA_DIR"):
        needed.discard("demo_build")
    for fixture, folder in BACKGROUND_BUILDS.items():
        if fixture in needed:
            _start_build(_background_root(session.config), folder)


def pytest_sessionfinish(session):
    for process in _background:  # a session that ends before its builds did
        if process.poll() is None:
            stop_process_group(process)


def _built(request, fixture: str) -> dict:
    """The shared build of ``fixture`` once it has ended (started here if it was not at collection)."""
    import time

    root, folder = _background_root(request.config), BACKGROUND_BUILDS[fixture]
    _start_build(root, folder)
    data_dir, rc = root / folder, root / f"{folder}.rc"
    deadline = time.monotonic() + 1800
    while not rc.exists():
        assert time.monotonic() < deadline, f"the build of {fixture} did not end within 30 minutes"
        time.sleep(0.5)
    stdout = Path(f"{data_dir}.out").read_text(encoding="utf-8")
    code = int(rc.read_text().strip())
    if code != 0:
        stderr = Path(f"{data_dir}.err").read_text(encoding="utf-8")
        raise AssertionError(f"zi build ({fixture}) failed ({code}):\n{stdout}\n{stderr}")
    return {"data_dir": data_dir, "stdout": stdout}


@pytest.fixture(scope="session")
def demo_build(request) -> dict:
    """The default demo (scale 0.05, seed 7) built end to end once per `make test` (BACKGROUND_BUILDS). Tests
    never write to it: they copy it. A failed build fails every test that needs it."""
    return _built(request, "demo_build")


@pytest.fixture(scope="session")
def demo_build_again(request) -> dict:
    """A second `zi build` of the same default demo in another fresh data directory, independent of
    ``demo_build`` (built at the same time, by its own process)."""
    return _built(request, "demo_build_again")


@pytest.fixture(scope="module")
def demo_data_dir(request) -> Path:
    """The session demo build's data directory, or a finished demo build named by ZI_QUALITY_DEMO_DATA_DIR
    (saves the 1–3 minute build while working on the checks; never written to: tests copy it)."""
    override = os.environ.get("ZI_QUALITY_DEMO_DATA_DIR")
    if override:
        return Path(override)
    return request.getfixturevalue("demo_build")["data_dir"]


#: What a Dagster process of this project imports and fingerprints, for tests that run one on a copy of the code
#: (so that changing a file there does not touch this checkout): ``CODE_DIRS`` and ``DBT_PATHS`` of the run
#: worker, the manifest ``make setup`` wrote, and the instance and workspace files.
CODE_TO_COPY = (
    "dagster_zi",
    "zi_warehouse",
    "models",
    "seeds",
    "dbt_project",
    "dbt_project.yml",
    "target",
    "workspace.yaml",
    "dagster.yaml",
)


def copy_code(target: Path) -> Path:
    """The repository's code at ``target`` (run from there with ``PYTHONPATH=target``)."""
    for name in CODE_TO_COPY:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "compiled", "run"))
        else:
            shutil.copy2(source, target / name)
    return target


def stop_process(process: subprocess.Popen, seconds: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``seconds``."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def copy_built_data_dir(source: Path, target: Path, with_instance: bool = False) -> Path:
    """A finished build's data directory at a new path, as if it had been built there.

    The build record (warehouse/last_build.json) names the data directory it was built in; the copy's record
    names the copy, so a build or sensor there sees exactly the changes made to the copy. Modification times
    are kept (the record compares them). Without ``with_instance`` the copy starts with an empty Dagster
    instance (no runs, sensors without cursors).
    """
    import json

    ignore = None if with_instance else shutil.ignore_patterns("dagster")
    shutil.copytree(source, target, symlinks=True, ignore=ignore)
    record = target / "warehouse" / "last_build.json"
    if record.exists():
        state = json.loads(record.read_text(encoding="utf-8"))
        state["inputs"]["data_dir"] = str(target.resolve())
        record.write_text(json.dumps(state), encoding="utf-8")
    return target


def published_parquet(parquet_dir: Path) -> dict[str, Path]:
    """Each published mart's Parquet: its file, or the folder of a history mart's monthly files
    (``pyarrow.parquet.read_table`` reads either)."""
    return {
        path.name.removesuffix(".parquet"): path
        for path in sorted(parquet_dir.iterdir())
        if path.is_dir() or path.suffix == ".parquet"
    }


def parquet_files(path: Path) -> list[Path]:
    """The Parquet files of one published mart (one, or a history mart's monthly files)."""
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def read_parquet_sql(path: Path) -> str:
    """DuckDB's ``read_parquet`` of one published mart, a file or a history mart's folder."""
    return f"read_parquet('{path / '*.parquet' if path.is_dir() else path}')"


@contextlib.contextmanager
def build_holding_the_lock(warehouse_dir: Path):
    """Another process's build holding the data directory's writer lock (the lock is per process) until the
    block ends."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from zi_warehouse import writer_lock\n"
            "with writer_lock.hold(pathlib.Path(sys.argv[1]), 'run-1', 'Zeitplan'):\n"
            "    print('held', flush=True); sys.stdin.read()",
            str(warehouse_dir),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.communicate("", timeout=30)
