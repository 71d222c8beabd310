"""Every public mart has a suite and a dbt test on its key; the Dagster wiring orders checks before publishing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zi_warehouse import reference

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = REPO_ROOT / "target" / "manifest.json"
QUALITY_MART = "mart_data_quality"


@pytest.fixture(scope="module")
def manifest() -> dict:
    if not MANIFEST.exists():
        pytest.fail("target/manifest.json fehlt: `dbt parse --profiles-dir dbt_project` ausführen (make setup).")
    return json.loads(MANIFEST.read_text())


def _public_marts(manifest) -> dict[str, dict]:
    return {
        n["name"]: n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["config"].get("schema") == "marts"
    }


def _key_tests(manifest, node_id: str) -> list[set[str]]:
    """Column sets covered by unique / not_null / unique_combination tests on the model."""
    out = []
    for n in manifest["nodes"].values():
        if n["resource_type"] != "test" or node_id not in n.get("depends_on", {}).get("nodes", []):
            continue
        meta = n.get("test_metadata") or {}
        if meta.get("name") in ("unique", "not_null") and n.get("column_name"):
            out.append({n["column_name"]})
        elif meta.get("name") == "unique_combination":
            out.append(set(meta["kwargs"]["columns"]))
    return out


def test_every_public_mart_has_a_suite_and_a_dbt_test_on_its_key(manifest):
    from zi_warehouse.quality import suites

    marts = _public_marts(manifest)
    specs = {s.mart: s for s in suites.suites()}
    # every mart but the quality mart itself (built from the suites' results) has a suite, and no suite is stale
    assert set(specs) == set(marts) - {QUALITY_MART}
    for name, node in marts.items():
        key = set(specs[name].key) if name in specs else {"result_id"}
        covered = _key_tests(manifest, node["unique_id"])
        assert any(cols & key for cols in covered), f"{name}: kein dbt-Test auf dem Schlüssel {sorted(key)}"
        if name in specs:
            names = {e.name for e in specs[name].expectations}
            assert any(n.endswith("_not_null") for n in names) and any(
                n.startswith(tuple(key)) or n == "key_unique" for n in names
            )


def test_quality_models_are_only_in_the_second_dbt_invocation(manifest):
    from dagster import AssetKey

    from dagster_zi.dbt import zi_dbt_assets
    from dagster_zi.quality import MART_KEY, zi_quality_dbt_assets

    assert MART_KEY in zi_quality_dbt_assets.keys and MART_KEY not in zi_dbt_assets.keys
    assert AssetKey(["staging", "stg_quality__data_quality_results"]) in zi_quality_dbt_assets.keys
    tagged = {
        n["name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and "zi_quality" in n["config"].get("tags", [])
    }
    assert tagged == {QUALITY_MART, "stg_quality__data_quality_results"}


def quality_definitions():
    """The lead's Definitions plus this module (as definitions.py will assemble them)."""
    from dagster import AssetSelection, Definitions, define_asset_job

    from dagster_zi import definitions as d
    from dagster_zi import quality

    modules = tuple(m for m in d.FAMILY_MODULES if m is not quality) + (quality,)
    return Definitions(
        assets=[*d.sources.assets, d.zi_dbt_assets, *d.publish.assets, *(a for m in modules for a in m.assets)],
        asset_checks=[*d.sources.asset_checks, *(c for m in modules for c in m.asset_checks)],
        jobs=[define_asset_job("build_warehouse", selection=AssetSelection.all())],
        resources={"dbt": d.dbt_resource},
    )


def test_dagster_graph_orders_results_mart_checks_and_publishing():
    from dagster import AssetKey

    from dagster_zi import quality
    from zi_warehouse.quality import freshness, reconciliations, suites

    defs = quality_definitions()
    graph = defs.resolve_asset_graph()
    marts = {k for k in graph.get_all_asset_keys() if k.path[0] == "marts" and k != quality.MART_KEY}
    assert set(graph.get(quality.RESULTS_KEY).parent_keys) == marts
    staging = AssetKey(["staging", "stg_quality__data_quality_results"])
    assert quality.RESULTS_KEY in graph.get(staging).parent_keys and staging in graph.get(quality.MART_KEY).parent_keys
    published = graph.get(AssetKey("published_warehouse"))
    assert quality.MART_KEY in published.parent_keys
    assert quality.MART_KEY not in graph.get(AssetKey("quality_report")).parent_keys  # written even when blocked
    specs = {s.key.name: s for s in quality.quality_checks.check_specs}
    assert len(specs) == len(suites.suites()) + len(reconciliations.CATALOGUE) + len(freshness.CATALOGUE)
    for name, (severity, _) in reconciliations.CATALOGUE.items():
        assert specs[f"reconciliation_{name}"].blocking is (severity == "error")
    assert all(specs[f"suite_{s.mart}"].blocking for s in suites.suites())
    assert not any(specs[f"freshness_{n}"].blocking for n in freshness.CATALOGUE)
    assert all(s.asset_key == quality.MART_KEY for s in specs.values())


def test_check_outcome_severity_follows_the_failed_rows():
    from dagster import AssetCheckSeverity

    from dagster_zi.quality import evaluate_group

    rows = [
        {
            "check_name": "mart_budget_year.year_unique",
            "municipality_key": None,
            "severity": "error",
            "outcome": "failed",
            "rows_failed": 2,
            "example_values": '["year=2020"]',
        },
        {
            "check_name": "mart_budget_year.utilisation_pct_range",
            "municipality_key": None,
            "severity": "warn",
            "outcome": "failed",
            "rows_failed": 1,
            "example_values": None,
        },
        {
            "check_name": "mart_budget_municipality_year.key_unique",
            "municipality_key": "bochum",
            "severity": "error",
            "outcome": "passed",
            "rows_failed": 0,
            "example_values": None,
        },
    ]
    assert evaluate_group(rows, "mart_budget_year.", True)[:2] == (False, AssetCheckSeverity.ERROR)
    warn_only = [r for r in rows if r["severity"] == "warn"]
    assert evaluate_group(warn_only, "mart_budget_year.", True)[:2] == (False, AssetCheckSeverity.WARN)
    assert evaluate_group(rows, "mart_budget_municipality_year.", True)[:2] == (True, AssetCheckSeverity.ERROR)
    assert evaluate_group(rows, "mart_budget_municipality_year.", False)[:2] == (True, AssetCheckSeverity.WARN)
    # no records for a check (e.g. the results were not written) is a failure, never a silent pass
    assert evaluate_group(rows, "reconciliation.paid_within_approved", True)[:2] == (False, AssetCheckSeverity.ERROR)
    # what zi build and the UI show: the rules by their German labels, the places by name, no internal key
    rows[0] |= {"check_name": "reconciliation.paid_within_approved", "municipality_key": "muelheim_an_der_ruhr"}
    text = evaluate_group(rows, "reconciliation.paid_within_approved", True)[2]
    paid = reference.rule_text("reconciliation.paid_within_approved", "quality_check").label_de
    assert text == f"1 Ergebnis(se) fehlgeschlagen: {paid}; betroffen: Mülheim an der Ruhr", text
