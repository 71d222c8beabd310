"""Shared fixtures: one demo build per test session, in a temporary ZI_DATA_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ZI = str(Path(sys.executable).parent / "zi")


def run_zi(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZI_DATA_DIR": str(data_dir), "DO_NOT_TRACK": "1", "DAGSTER_DISABLE_TELEMETRY": "1",
           "COLUMNS": "200"}
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
