"""Reconciliation checks of the funding data, as plain SQL over the warehouse (no Dagster here).

What belongs here: one function per check, taking an open DuckDB connection to the working warehouse
and returning a ``CheckOutcome``. ``dagster_zi/funding.py`` wires them as asset checks with their
severities; tests call them directly. The thresholds are the programme's rules (docs/domain.md#funding).

Which checks block publishing (ERROR) and why:
- a payment without approval, an approval without application, an application whose municipality is
  unknown: the money would vanish from the figures per municipality and per project;
- a missing or failed extract in the delta sequence: later figures would silently lack changes.
Rule violations that are possible in reality and need a controller's look (approved above requested
after a cost increase, funding rate or minimum grant outside the guideline) are flagged (WARN).

Paid within approved is checked once, by the controlling layer (``quality/reconciliations.py``,
``paid_within_approved``: per measure and municipality, recorded in ``mart_data_quality``, blocking).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from zi_warehouse import reference
from zi_warehouse.german import format_date
from zi_warehouse.quality.reconciliations import TOLERANCE_EUR
from zi_warehouse.sources import funding as spec
from zi_warehouse.warehouse import rows as _rows

#: Maximum funding rate per owner type (FöRL KRiS: up to 100 % municipal, up to 90 % private).
MAX_FUNDING_RATE = {"municipal": 1.0, "private": 0.9}
#: Minimum grant: more than 12,500 EUR for municipalities (and their associations), more than 2,000 EUR
#: for others (FöRL KRiS).
MIN_GRANT_EUR = {"municipal": 12_500.0, "private": 2_000.0}

INT = "intermediate"
STG = "staging"


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    message_de: str
    failing: int = 0
    examples: list[dict] = field(default_factory=list)

    def metadata(self) -> dict:
        return {"failing": self.failing, "message_de": self.message_de, "examples": str(self.examples[:10])}


def _outcome(name: str, rows: list[dict], ok_de: str, bad_de: str) -> CheckOutcome:
    if not rows:
        return CheckOutcome(name, True, ok_de)
    return CheckOutcome(name, False, bad_de.format(n=len(rows)), len(rows), rows[:20])


def payments_have_approval(con) -> CheckOutcome:
    rows = _rows(
        con,
        f"""
        select p.payment_id, p.approval_id, p.amount_eur
        from {INT}.int_funding__payments p
        left join {INT}.int_funding__approvals a on a.approval_id = p.approval_id and not a.is_deleted
        where not p.is_deleted and a.approval_id is null order by p.payment_id""",
    )
    return _outcome(
        "payments_have_approval",
        rows,
        "Jede Zahlung hat einen gültigen Bescheid.",
        "{n} Zahlung(en) ohne gültigen Bescheid.",
    )


def approved_within_requested(con) -> CheckOutcome:
    rows = _rows(
        con,
        f"""
        select a.approval_id, a.application_id, a.approved_eur, ap.requested_eur, a.amendment_count
        from {INT}.int_funding__approvals a
        join {INT}.int_funding__applications ap using (application_id)
        where not a.is_deleted and a.approved_eur > ap.requested_eur + {TOLERANCE_EUR}
        order by a.approval_id""",
    )
    return _outcome(
        "approved_within_requested",
        rows,
        "Kein Bescheid bewilligt mehr als beantragt.",
        "{n} Bescheid(e) bewilligen mehr als beantragt (meist nach Änderungsbescheid): bitte prüfen.",
    )


def funding_rate_within_limits(con) -> CheckOutcome:
    limits = pa.table({"owner_type": list(MAX_FUNDING_RATE), "max_rate": list(MAX_FUNDING_RATE.values())})
    con.register("_funding_rate_limits", limits)
    try:
        rows = _rows(
            con,
            f"""
            select ap.application_id, ap.project_id, ap.owner_type, ap.funding_rate, l.max_rate
            from {INT}.int_funding__applications ap
            left join _funding_rate_limits l using (owner_type)
            where not ap.is_deleted
              and (ap.funding_rate <= 0 or ap.funding_rate > coalesce(l.max_rate, 0) + 1e-9)
            order by ap.application_id""",
        )
    finally:
        con.unregister("_funding_rate_limits")
    return _outcome(
        "funding_rate_within_limits",
        rows,
        "Alle Fördersätze liegen in den Grenzen der Förderrichtlinie (kommunal bis 100 %, privat bis 90 %).",
        "{n} Antrag/Anträge mit Fördersatz außerhalb der Grenzen der Förderrichtlinie.",
    )


def minimum_grant_thresholds(con) -> CheckOutcome:
    rows = _rows(
        con,
        f"""
        select a.approval_id, ap.owner_type, a.approved_eur
        from {INT}.int_funding__approvals a
        join {INT}.int_funding__applications ap using (application_id)
        where not a.is_deleted
          and a.approved_eur <= case ap.owner_type when 'municipal' then {MIN_GRANT_EUR["municipal"]}
                                                     else {MIN_GRANT_EUR["private"]} end
        order by a.approval_id""",
    )
    return _outcome(
        "minimum_grant_thresholds",
        rows,
        "Alle Bescheide liegen über der Bagatellgrenze (kommunal > 12.500 EUR, sonst > 2.000 EUR).",
        "{n} Bescheid(e) unter der Bagatellgrenze der Förderrichtlinie.",
    )


def approvals_have_application(con) -> CheckOutcome:
    rows = _rows(
        con,
        f"""
        select a.approval_id, a.application_id
        from {INT}.int_funding__approvals a
        left join {INT}.int_funding__applications ap on ap.application_id = a.application_id and not ap.is_deleted
        where not a.is_deleted and ap.application_id is null
        order by a.approval_id""",
    )
    return _outcome(
        "approvals_have_application",
        rows,
        "Jeder Bescheid gehört zu einem Antrag.",
        "{n} Bescheid(e) ohne (gültigen) Antrag: Projekt und Kommune unbekannt.",
    )


def applications_municipality_known(con) -> CheckOutcome:
    known = pa.table({"municipality_key": sorted(reference.municipality_by_key())})
    con.register("_known_municipalities", known)
    try:
        rows = _rows(
            con,
            f"""
            select ap.application_id, ap.municipality_name, ap.municipality_key
            from {INT}.int_funding__applications ap
            where not ap.is_deleted and (ap.municipality_key is null
                  or ap.municipality_key not in (select municipality_key from _known_municipalities))
            order by ap.application_id""",
        )
    finally:
        con.unregister("_known_municipalities")
    return _outcome(
        "applications_municipality_known",
        rows,
        "Jeder Antrag ist einer bekannten Kommune zugeordnet.",
        "{n} Antrag/Anträge ohne bekannte Kommune.",
    )


def delta_sequence_complete(con) -> CheckOutcome:
    """No extract of the file channel is missing, held back or failed from the latest full extract on."""
    ledger = _rows(
        con,
        """
        select source_file, file_name, outcome, error_message, error_rule
        from raw.ingestion_files where source_family = ? order by source_file""",
        [spec.SOURCE_FAMILY],
    )
    problems: list[dict] = []
    present: dict[int, dict[str, str]] = {}
    fulls = []
    for row in ledger:
        m = spec.FILE_NAME_RE.match(row["file_name"])
        if not m or m["token"].lower() not in spec.ENTITY_BY_TOKEN:
            continue
        seq = int(m["seq"])
        present.setdefault(seq, {})[m["token"].lower()] = row["outcome"]
        if m["kind"].lower() == "voll":
            fulls.append(seq)
        if row["outcome"] in ("blocked", "failed"):
            problems.append(
                {
                    "file": row["file_name"],
                    "outcome": row["outcome"],
                    "message_de": row["error_message"],
                    "rule": row["error_rule"],
                }
            )
    if present:
        start = max(fulls) if fulls else 0
        for seq in range(start, max(present) + 1):
            for token in spec.ENTITY_BY_TOKEN:
                if token not in present.get(seq, {}):
                    problems.append(
                        {
                            "file": f"zi_foerderung_{seq:03d}_*_{token}.csv",
                            "outcome": "missing",
                            "message_de": f"Lieferung Nr. {seq}: Datei für '{token}' fehlt.",
                        }
                    )
    problems.sort(key=lambda p: p["file"])
    # The files by name in the message itself: it is what `zi build`, the alert e-mail and the UI show first.
    listed = ", ".join(f"{p['file']} ({_why(p)})" for p in problems[:6])
    listed = listed.replace("{", "{{").replace("}", "}}")  # a template for str.format below
    return _outcome(
        "delta_sequence_complete",
        problems,
        "Die Folge der Förderdaten-Extrakte ist lückenlos geladen.",
        "{n} Förderdaten-Datei(en) der Extraktfolge nicht geladen: "
        + listed
        + (" …" if len(problems) > 6 else "")
        + "; spätere Stände sind unvollständig.",
    )


_SEQUENCE_OUTCOME_DE = {"missing": "fehlt", "blocked": "zurückgehalten", "failed": "abgewiesen"}


def applications_keep_their_municipality(con) -> CheckOutcome:
    """An application whose municipality changed from one extract to a later one: its money and its KPI
    contributions move to the other municipality, earlier quarters' figures change with it."""
    rows = _rows(
        con,
        f"""
        with versions as (
            select application_id, municipality_key, extract_id,
                   lag(municipality_key) over (
                       partition by application_id order by updated_at, extract_as_of, _source_file
                   ) as municipality_key_before
            from {STG}.stg_funding__applications
        )
        select v.application_id, v.municipality_key_before, v.municipality_key, v.extract_id
        from versions v
        join {INT}.int_funding__applications ap using (application_id)
        where not ap.is_deleted
          and v.municipality_key_before is not null
          and v.municipality_key is distinct from v.municipality_key_before
        order by v.application_id, v.extract_id""",
    )
    names = reference.municipality_by_key()

    def name(key: str | None) -> str:
        return names[key].name if key in names else str(key)

    moves = "; ".join(
        f"{r['application_id']}: {name(r['municipality_key_before'])} → {name(r['municipality_key'])} "
        f"(Extrakt {r['extract_id']})"
        for r in rows[:3]
    )
    return _outcome(
        "applications_keep_their_municipality",
        rows,
        "Kein Antrag hat zwischen zwei Extrakten die Kommune gewechselt.",
        "{n} Kommunenwechsel eines Antrags zwischen zwei Extrakten"
        + (f" ({moves}{' …' if len(rows) > 3 else ''})" if rows else "")
        + ": Mittel und Kennzahlen wandern mit, auch für frühere Quartale. Bitte prüfen, ob die Korrektur gewollt ist.",
    )


def applications_before_approval(con) -> CheckOutcome:
    """A notice dated before its application: one of the two dates is wrong, and the pipeline's lead times
    (application to approval) come out negative."""
    rows = _rows(
        con,
        f"""
        select a.approval_id, a.application_id, ap.application_date, a.notice_date
        from {INT}.int_funding__approvals a
        join {INT}.int_funding__applications ap using (application_id)
        where not a.is_deleted and not ap.is_deleted and a.notice_date < ap.application_date
        order by a.approval_id""",
    )
    dated = "; ".join(
        f"{r['approval_id']} vom {format_date(r['notice_date'])}, Antrag {r['application_id']} vom "
        f"{format_date(r['application_date'])}"
        for r in rows[:3]
    )
    return _outcome(
        "applications_before_approval",
        rows,
        "Jeder Bescheid ist nicht älter als sein Antrag.",
        "{n} Bescheid(e) älter als ihr Antrag"
        + (f" ({dated}{' …' if len(rows) > 3 else ''})" if rows else "")
        + ": Antrags- oder Bescheiddatum in der Förderdatenbank prüfen lassen.",
    )


def _why(problem: dict) -> str:
    """„abgewiesen: Spaltenköpfe passen nicht“: what became of a file of the sequence, and by which rule."""
    outcome = _SEQUENCE_OUTCOME_DE[problem["outcome"]]
    rule = problem.get("rule")
    return f"{outcome}: {reference.rule_text(rule, 'rejection', spec.SOURCE_FAMILY).label_de}" if rule else outcome


#: Every check with its name, the model it guards and whether it blocks publishing.
CHECKS = {
    "delta_sequence_complete": (delta_sequence_complete, "raw_funding", True),
    "payments_have_approval": (payments_have_approval, "int_funding__payments", True),
    "approvals_have_application": (approvals_have_application, "int_funding__approvals", True),
    "applications_municipality_known": (applications_municipality_known, "int_funding__applications", True),
    "approved_within_requested": (approved_within_requested, "int_funding__approvals", False),
    "funding_rate_within_limits": (funding_rate_within_limits, "int_funding__applications", False),
    "minimum_grant_thresholds": (minimum_grant_thresholds, "int_funding__approvals", False),
    "applications_keep_their_municipality": (applications_keep_their_municipality, "int_funding__applications", False),
    "applications_before_approval": (applications_before_approval, "int_funding__approvals", False),
}


def run_all(con) -> dict[str, CheckOutcome]:
    return {name: fn(con) for name, (fn, _, _) in CHECKS.items()}
