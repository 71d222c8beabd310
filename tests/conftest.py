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
BUILD_FIXTURES = {"demo_build", "demo_data_dir"}


def pytest_collection_modifyitems(items):
    for item in items:
        if BUILD_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory) -> dict:
    """The default demo (scale 0.05, seed 7) built end to end once: `zi build` on an empty landing area."""
    data_dir = tmp_path_factory.mktemp("zi_data")
    result = run_zi(data_dir, "build")
    return {"data_dir": data_dir, "stdout": result.stdout}


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
