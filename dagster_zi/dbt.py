"""The dbt project as Dagster assets (dagster-dbt). The manifest is built at set-up (``make setup`` runs
``dbt parse``), never at import; ``prepare_if_dev`` re-parses only under ``dagster dev``."""

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging import version

from dagster_zi.constants import WAREHOUSE_POOL
from zi_warehouse.config import REPO_ROOT
from zi_warehouse.dbt_launcher import target_folder

#: The dbt of this virtual environment, started in the warehouse folder (zi_warehouse/dbt_launcher.py;
#: PATH may not include .venv/bin, e.g. under cron, or when `dagster dev` re-parses the project through
#: prepare_if_dev, which looks dbt up on PATH).
DBT_EXECUTABLE = str(Path(sys.executable).parent / "zi-dbt")
if shutil.which("dbt") is None:
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

#: The end of every build step's dbt arguments: no manifest.json and run_results.json per invocation. dbt
#: serialises the whole parsed project into them after each command (0.15-0.2 s, twice per run); the assets read
#: dbt's event stream instead, and each invocation's folder keeps its dbt.log and compiled SQL for the data team.
NO_RUN_ARTEFACTS = ("--no-write-json",)

dbt_project = DbtProject(project_dir=REPO_ROOT, profiles_dir=REPO_ROOT / "dbt_project")
dbt_project.prepare_if_dev()


class ZiDbtTranslator(DagsterDbtTranslator):
    """Groups dbt assets by layer; a dbt source ``raw_<family>.<table>`` is the asset key
    ``["raw_<family>", "<table>"]`` that the ingest multi-asset of that family materialises."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        resource_type = dbt_resource_props["resource_type"]
        if resource_type == "seed":
            return "reference"
        if resource_type == "snapshot":
            return "snapshots"
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "dbt"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=ZiDbtTranslator(),
    # The controlling layer's models (mart_data_quality) build in their own invocation after the quality
    # checks ran (dagster_zi/quality.py).
    exclude="tag:zi_quality",
    pool=WAREHOUSE_POOL,
)
def zi_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource):
    # dbt reads ZI_DATA_DIR from the environment (dbt_project/profiles.yml).
    os.environ.setdefault("ZI_DATA_DIR", str(REPO_ROOT / "data"))
    # dbt unit tests check SQL logic against fixed inputs: they belong to the code's tests (tests/
    # test_dbt_unit_tests.py runs them), not to every build of the data.
    yield from dbt.cli(["build", "--exclude-resource-type", "unit_test", *NO_RUN_ARTEFACTS], context=context).stream()


class ZiDbtCliResource(DbtCliResource):
    """dagster-dbt's CLI resource without two start-up costs this project does not need.

    Before every invocation dagster-dbt runs ``dbt --version`` in a subprocess (a whole dbt start-up,
    3-10 s on this machine) to tell dbt Core from the Fusion engine, and opens a dbt adapter in this
    process for column and row-count metadata, which these assets never fetch. The dbt executable is
    the one of this virtual environment, so its version is the installed dbt-core package's.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        from dbt.version import __version__ as dbt_core_version

        return version.parse(dbt_core_version)

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return None  # only used by fetch_column_metadata / fetch_row_counts, which no asset calls

    def cli(self, args: Sequence[str], **kwargs) -> Any:
        """dbt with this data directory's target folder, whichever process runs it (see ``target_folder``)."""
        target_folder()
        return super().cli(args, **kwargs)


dbt_resource = ZiDbtCliResource(
    project_dir=dbt_project, profiles_dir=str(REPO_ROOT / "dbt_project"), dbt_executable=DBT_EXECUTABLE
)
