"""No internal rule key in what a coordinator or controller reads (issue 16): the demo build's feedback workbooks,
the e-mails in its outbox, the quality report and the quarterly report are scanned for every rule key of
``seeds/rule_texts.csv`` standing as a word. Keys stay for machines: in ``data-*`` attributes and in the marts.

Also: whole-file rejections of the demo are filed under their municipality and linked from the quality report's
scorecard; only feedback without an identifiable sender is on its list for the data team.
"""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
import python_calamine as pc

from report_layout import visible_text  # the text a reader sees, as the report tests read it
from zi_warehouse import reference
from zi_warehouse.forecasts import feedback

#: A key "as a word": not part of a longer identifier, a path or a file name.
_WORD = re.compile(r"(?<![\w./-])[A-Za-z_][\w.*]*(?![\w/-])")


def rule_keys() -> set[str]:
    return {r.rule_key for r in reference.rule_texts() if not r.is_pattern}


def keys_in(text: str) -> set[str]:
    return {w.rstrip(".") for w in _WORD.findall(text)} & rule_keys()


def workbook_text(path: Path) -> str:
    wb = pc.CalamineWorkbook.from_path(str(path))
    try:
        return "\n".join(
            str(v)
            for name in wb.sheet_names
            for row in wb.get_sheet_by_name(name).to_python()
            for v in row
            if v not in (None, "")
        )
    finally:
        wb.close()


def test_the_scan_finds_a_key():
    assert keys_in("Regel: duplicate_project_id.") == {"duplicate_project_id"}
    assert keys_in(visible_text("<td>Regel</td><td>header_<wbr>mismatch</td>")) == {"header_mismatch"}
    assert not keys_in(visible_text("<td>measure_<wbr>type_<wbr>key</td>"))
    assert not keys_in("forecasts/Prognose_type.xlsx und data-rule")


def test_no_rule_key_in_feedback_workbooks(demo_data_dir):
    workbooks = sorted((demo_data_dir / "feedback").rglob("*.xlsx"))
    assert len(workbooks) > 20
    found = {p.name: keys_in(workbook_text(p)) for p in workbooks}
    assert not {k: v for k, v in found.items() if v}


def test_no_rule_key_in_the_outbox(demo_data_dir):
    messages = sorted((demo_data_dir / "outbox").glob("*.eml"))
    assert len(messages) > 20
    for path in messages:
        message = message_from_bytes(path.read_bytes(), policy=default)
        text = message["Subject"] + "\n" + message.get_body(("plain",)).get_content()
        assert not keys_in(text), path.name


@pytest.mark.parametrize("report", ["quality", "quarterly"])
def test_no_rule_key_in_the_reports(demo_data_dir, report):
    pages = sorted((demo_data_dir / "reports" / report).rglob("*.html"))
    assert pages, f"no {report} report in the demo build"
    for page in pages:
        text = visible_text(page.read_text(encoding="utf-8"))
        assert not keys_in(text), f"{page}: {sorted(keys_in(text))}"


def test_whole_file_rejections_are_linked_under_their_municipality(demo_data_dir):
    import duckdb

    con = duckdb.connect(str(demo_data_dir / "published" / "zi.duckdb"), read_only=True)
    failed = con.execute(
        "select municipality_key, period, file_name, error_rule, outcome from marts.mart_ingestion_files "
        "where source_family = 'forecasts' and outcome in ('failed', 'duplicate') order by file_name"
    ).fetchall()
    copies_among_rejections = con.execute(
        "select count(*) from marts.mart_rejected_rows where rule = 'duplicate_delivery'"
    ).fetchone()[0]
    con.close()
    assert len(failed) >= 10
    assert all(key and period for key, period, *_ in failed), "a demo file rejected as a whole has no sender"
    assert {rule for *_, rule, _ in failed} >= {"header_mismatch", "file_corrupt", "duplicate_delivery"}
    # A copy of a delivery already loaded is no failure: it is not counted with the files that failed nor
    # with the rejections (its sender has nothing to do), yet its feedback says so.
    assert {(rule == "duplicate_delivery", outcome) for *_, rule, outcome in failed} == {
        (True, "duplicate"),
        (False, "failed"),
    }
    assert copies_among_rejections == 0
    report = (demo_data_dir / "reports" / "quality" / "latest" / "index.html").read_text(encoding="utf-8")
    root = demo_data_dir / "feedback"
    for key, period, file_name, *_ in failed:
        path = feedback.workbook_path(root, {"municipality_key": key, "period": period, "file_name": file_name})
        assert path.exists(), path
        assert f'href="../../../feedback/forecasts/{key}/{path.name}"' in report, path.name
    assert not (root / "forecasts" / feedback.UNASSIGNED).exists()  # the demo names every sender


def test_the_template_doc_lists_every_spelling_and_every_reason():
    """docs/template.md (for coordinators) shows the accepted spellings and the rules by their German labels."""
    import csv

    from test_rule_texts import rejection_keys

    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "template.md").read_text(encoding="utf-8")
    with open(root / "seeds" / "coded_value_spellings.csv", encoding="utf-8") as fh:
        spellings = [r["spelling"] for r in csv.DictReader(fh)]
    assert [s for s in spellings if f"„{s}“" not in doc] == []
    labels = {
        reference.rule_text(key, "rejection", family).label_de
        for family, key in rejection_keys()
        if family == "forecasts"
    }
    assert sorted(label for label in labels if label not in doc) == []
    assert not keys_in(doc.split("## Gründe einer Abweisung")[1])


def test_spellings_are_unambiguous_and_point_at_real_values():
    from zi_warehouse.forecasts import template as t

    canonical = {
        "status": t.status_labels(),
        "measure_type": t.measure_type_labels(),
        "surface_type": t.SURFACE_TYPES,
        "yes_no": {"true": "ja", "false": "nein"},
    }
    seen: dict[tuple[str, str], str] = {}
    import csv

    root = Path(__file__).resolve().parent.parent
    with open(root / "seeds" / "coded_value_spellings.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            code, key = row["code_list"], row["value_key"]
            assert key in canonical[code], row
            spelling = reference.normalise_name(row["spelling"])
            labels = {reference.normalise_name(v): k for k, v in canonical[code].items()}
            assert spelling not in labels, f"{row}: already a label of the list"
            assert (code, spelling) not in seen, f"{row}: the same spelling twice"
            seen[(code, spelling)] = key


def test_the_command_line_describes_its_commands_in_german():
    """`zi --help` is read by controllers and the data team alike: every command's description is German, like
    its options (the docstrings are notes for developers and never shown)."""
    from typer.testing import CliRunner

    from zi_warehouse.cli import app

    english = re.compile(r"\b(the|and|of|from|into|every|write|run)\b")
    for command in app.registered_commands:
        assert command.help, command.name
        assert not english.search(command.help), (command.name, command.help)
    shown = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "Das veröffentlichte Warehouse lesend abfragen" in shown
    # Typer's own options (help, shell completion) are described in German too, on every command.
    for args in (["--help"], *([c.name, "--help"] for c in app.registered_commands)):
        shown = CliRunner().invoke(app, args, env={"COLUMNS": "200"}).output
        assert "Diese Hilfe zeigen und beenden." in shown, args
        assert not re.search(r"Show this message|for the current shell", shown), args
        # Typer's panels and Click's usage line too
        assert "Aufruf: " in shown and "[OPTIONEN]" in shown and "Optionen" in shown, (args, shown)
        assert not re.search(
            r"\b(Usage|Options|Commands|Arguments|default|required)\b|\[OPTIONS\]|<(bool|str|path|float|int)>", shown
        ), (
            args,
            shown,
        )


def test_a_mistyped_command_line_is_answered_in_german():
    """A wrong option, command or value: the error Typer prints is German, with the usage line and the exit
    code (2) Click gives it."""
    import subprocess

    from conftest import REPO_ROOT, ZI

    cases = {
        ("build", "--bogus"): "Unbekannte Option: --bogus.",
        ("bild",): "Unbekannter Befehl: bild. Gemeint: 'build'?",
        ("build", "--wait-minutes", "abc"): "Ungültiger Wert für '--wait-minutes': erwartet wird eine Zahl.",
        ("build", "--wait-minutes"): "Option --wait-minutes braucht einen Wert.",
        ("build", "überzählig"): "Unerwartete weitere Angaben: überzählig",
        ("build", "--wait-minutes", "-5"): "Ungültiger Wert für '--wait-minutes': erwartet wird ein Wert ab 0.",
    }
    for args, message in cases.items():
        result = subprocess.run(
            [ZI, *args], cwd=REPO_ROOT, capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
        )
        shown = result.stdout + result.stderr
        assert result.returncode == 2, (args, shown)
        assert message in shown and "Fehler" in shown, (args, shown)
        assert re.search(r"^Aufruf: zi .*\nHilfe: zi (\S+ )?--help$", shown, re.M), (args, shown)  # usage, help hint
        assert not re.search(r"\b(Usage|Error|Try|No such|Invalid value|Missing|Got unexpected)\b", shown), (
            args,
            shown,
        )


def test_click_messages_without_a_german_pattern_are_shown_as_click_wrote_them():
    from zi_warehouse.cli_german import german_error

    assert german_error("Missing option '--quarter'.") == "Option '--quarter' fehlt."
    assert german_error("Missing argument 'PATH'.") == "Argument 'PATH' fehlt."
    assert (
        german_error("No such option: --x (Possible options: --xa, --xb)")
        == "Unbekannte Option: --x (ähnliche Optionen: --xa, --xb)."
    )
    assert german_error("Invalid value for '--scale': '2x' is not a valid float.") == (
        "Ungültiger Wert für '--scale': „2x“ ist keine Zahl."
    )
    assert german_error("Invalid value for 'MODE': 'c' is not one of 'a', 'b'.") == (
        "Ungültiger Wert für 'MODE': „c“ ist keiner der Werte 'a', 'b'."
    )
    assert german_error("Something Click adds in a later version.") == "Something Click adds in a later version."


def test_the_german_texts_cost_a_command_nothing_until_help_or_an_error_is_printed():
    """Typer's rich layer (~60 ms to import) is loaded only to print help or an error; setting its German texts
    must not load it for every `zi` command."""
    import subprocess
    import sys

    code = "import sys, zi_warehouse.cli; print('typer.rich_utils' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "False"
