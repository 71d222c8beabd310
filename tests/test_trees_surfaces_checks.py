"""The Dagster asset checks of trees and surfaces: what they find, and with which severity."""

from __future__ import annotations

from dagster import AssetCheckSeverity

from dagster_zi import trees_surfaces
from zi_warehouse import config, ingest, warehouse
from zi_warehouse.demo import trees as demo_trees
from zi_warehouse.sources import surfaces, trees


def test_checks_pass_on_demo_data_and_fail_with_their_severity(tmp_path, monkeypatch):
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path))
    paths = config.paths()
    folder = paths.landing / "trees" / "campaign"
    folder.mkdir(parents=True)
    demo_trees.write_campaign(folder, seed=7)
    (paths.landing / "surfaces").mkdir(parents=True)
    (paths.landing / "surfaces" / "herne.csv").write_text(
        "Flurstück;Fläche m2;Flächenart;Kanalanschluss;Kommune\n"
        + "".join(f"1-{i};{10 + i},5;Flachdach;Mischwasser;Herne\n" for i in range(200)),
        encoding="utf-8",
    )
    with warehouse.connect(paths.warehouse) as con:
        ingest.ingest(con, trees, paths.landing, log=lambda m: None)
        ingest.ingest(con, surfaces, paths.landing, log=lambda m: None)

    campaign = trees_surfaces.trees_campaign_total()
    assert campaign.passed and campaign.metadata["trees"].value == 10_000
    assert trees_surfaces.surfaces_area_positive().passed
    assert trees_surfaces.surfaces_codes_in_domain().passed
    assert trees_surfaces.surfaces_rejection_share().passed

    with warehouse.connect(paths.warehouse) as con:
        con.execute(f"delete from raw.{trees.CAMPAIGN} where _row_number = 2")
        con.execute(f"update raw.{surfaces.PARCELS} set area_m2 = -1, sewer_connection = 'MW' where _row_number = 5")
    campaign = trees_surfaces.trees_campaign_total()
    assert not campaign.passed and campaign.severity == AssetCheckSeverity.WARN
    area = trees_surfaces.surfaces_area_positive()
    codes = trees_surfaces.surfaces_codes_in_domain()
    assert not area.passed and not codes.passed
    assert area.severity == codes.severity == AssetCheckSeverity.ERROR
    blocking = {spec.name: spec.blocking for c in trees_surfaces.asset_checks for spec in c.check_specs}
    assert blocking == {
        "trees_register_rejection_share": False,
        "trees_campaign_total": False,
        "surfaces_area_positive": True,
        "surfaces_codes_in_domain": True,
        "surfaces_rejection_share": False,
        "water_balance_precipitation_in_range": False,
    }
