"""The funding entities (applications, approvals, amendments, payments, measures) as both channels carry them.

What belongs here: each entity's columns (raw name, CSV header, database column, kind), its raw table schema,
the key lists, and the code lists (what senders write for measure type, status and owner type -> reference
keys; the German label an extract writes for a key). The file channel (``funding.py``), the database channel
(``funding_db.py``) and the demo writers share it. The extract format and the validation pipeline live in
``funding.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from zi_warehouse import reference

#: The source family (``funding.py`` implements its contract): prefix of the raw tables.
SOURCE_FAMILY = "funding"

# --------------------------------------------------------------------------------------------------
# Entity specification (shared with the database channel)
# --------------------------------------------------------------------------------------------------

_ARROW_TYPES = {
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),  # local time (Europe/Berlin) as the funding database stores it
    "eur": pa.decimal128(15, 2),
    "number": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "municipality": pa.string(),  # the name as written; the matched key goes to municipality_key
    "measure_type": pa.string(),
    "status": pa.string(),
    "owner_type": pa.string(),
}


@dataclass(frozen=True)
class Column:
    name: str  # raw column name (English)
    header_de: str  # header in the CSV extract
    db_column: str  # column in the funding database
    kind: str  # key of _ARROW_TYPES
    required: bool = False


@dataclass(frozen=True)
class Entity:
    name: str  # e.g. "applications"
    file_token: str  # entity part of the file name, e.g. "antraege"
    db_table: str  # table in the funding database (schema foerderung)
    key: str  # business key column
    control_column: str  # the amount the control record totals
    columns: tuple[Column, ...]

    @property
    def raw_table(self) -> str:
        return f"{SOURCE_FAMILY}__{self.name}"

    @property
    def headers(self) -> dict[str, Column]:
        return {c.header_de: c for c in self.columns}

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _c(name, header, db, kind, required=False) -> Column:
    return Column(name, header, db, kind, required)


_UPDATED = _c("updated_at", "Geändert am", "geaendert_am", "timestamp", True)

ENTITIES: tuple[Entity, ...] = (
    Entity(
        "applications",
        "antraege",
        "antrag",
        "application_id",
        "requested_eur",
        (
            _c("application_id", "Antragsnummer", "antrag_nr", "text", True),
            _c("project_id", "Projektnummer Kommune", "projekt_nr", "text", True),
            _c("municipality_name", "Kommune", "kommune", "municipality", True),
            _c("title", "Vorhaben", "titel", "text"),
            _c("measure_type_key", "Maßnahmenart", "massnahmenart", "measure_type", True),
            _c("owner_type", "Trägerart", "traegerart", "owner_type", True),
            _c("application_date", "Antragsdatum", "antragsdatum", "date", True),
            _c("total_cost_eur", "Gesamtausgaben (EUR)", "gesamtausgaben_eur", "eur", True),
            _c("requested_eur", "Beantragte Zuwendung (EUR)", "beantragt_eur", "eur", True),
            _c("funding_rate_pct", "Fördersatz (%)", "foerdersatz_pct", "number", True),
            _c("status_key", "Status", "status", "status", True),
            _c("contact_name", "Ansprechperson", "ansprechperson", "text"),
            _c("contact_email", "E-Mail", "email", "text"),
            _UPDATED,
        ),
    ),
    Entity(
        "approvals",
        "bescheide",
        "bescheid",
        "approval_id",
        "approved_eur",
        (
            _c("approval_id", "Bescheidnummer", "bescheid_nr", "text", True),
            _c("application_id", "Antragsnummer", "antrag_nr", "text", True),
            _c("notice_date", "Bescheiddatum", "bescheiddatum", "date", True),
            _c("approved_eur", "Bewilligte Zuwendung (EUR)", "bewilligt_eur", "eur", True),
            _c("construction_start_date", "Baubeginn", "baubeginn", "date"),
            _c("completion_date", "Verwendungsnachweis", "verwendungsnachweis_am", "date"),
            _UPDATED,
        ),
    ),
    Entity(
        "amendments",
        "aenderungen",
        "aenderungsbescheid",
        "amendment_id",
        "approved_eur",
        (
            _c("amendment_id", "Änderungsbescheid-Nr", "aenderung_nr", "text", True),
            _c("approval_id", "Bescheidnummer", "bescheid_nr", "text", True),
            _c("amendment_no", "Lfd. Änderung", "lfd_nr", "int", True),
            _c("notice_date", "Bescheiddatum", "bescheiddatum", "date", True),
            _c("approved_eur", "Bewilligte Zuwendung neu (EUR)", "bewilligt_neu_eur", "eur", True),
            _UPDATED,
        ),
    ),
    Entity(
        "payments",
        "zahlungen",
        "zahlung",
        "payment_id",
        "amount_eur",
        (
            _c("payment_id", "Zahlungsnummer", "zahlung_nr", "text", True),
            _c("approval_id", "Bescheidnummer", "bescheid_nr", "text", True),
            _c("paid_on", "Zahlungsdatum", "zahlungsdatum", "date", True),
            _c("amount_eur", "Betrag (EUR)", "betrag_eur", "eur", True),
            _UPDATED,
        ),
    ),
    Entity(
        "measures",
        "massnahmen",
        "massnahme",
        "measure_id",
        "disconnected_area_m2",
        (
            _c("measure_id", "Maßnahmennummer", "massnahme_nr", "text", True),
            _c("approval_id", "Bescheidnummer", "bescheid_nr", "text", True),
            _c("measure_type_key", "Maßnahmenart", "massnahmenart", "measure_type", True),
            _c("is_in_designated_area", "Im Gestaltungsraum", "im_gestaltungsraum", "bool", True),
            _c("designated_area_name", "Gestaltungsraum", "gestaltungsraum", "text"),
            _c("disconnected_area_m2", "Abgekoppelte Fläche (m²)", "abgekoppelt_m2", "number", True),
            _c("affected_surface_type", "Betroffene Oberfläche", "oberflaeche_vorher", "text"),
            _c("surface_change_m2", "Veränderte Fläche (m²)", "veraenderte_flaeche_m2", "number", True),
            _c("trees", "Bäume (Anzahl)", "baeume", "int", True),
            _UPDATED,
        ),
    ),
)
ENTITY_BY_NAME = {e.name: e for e in ENTITIES}
ENTITY_BY_TOKEN = {e.file_token: e for e in ENTITIES}

#: Columns every entity table carries: which extract a row came from (lineage is added by the loader).
EXTRACT_FIELDS = [
    pa.field("extract_id", pa.string()),  # zi_foerderung_003_delta_20210930 or funding/db/<entity>@<watermark>
    pa.field("extract_channel", pa.string()),  # "file" or "db"
    pa.field("extract_kind", pa.string()),  # "full" or "delta"
    pa.field("extract_seq", pa.int64()),  # sequence number of a file extract (NULL for the database channel)
    pa.field("extract_as_of", pa.timestamp("us")),  # cut-off of the extract (Stichtag 23:59:59, or extraction time)
]

KEY_LIST_TABLE = f"{SOURCE_FAMILY}__key_lists"
#: Complete key lists (every full extract, every database run): a key missing from the latest list of its
#: entity was deleted in the funding database. Secondary table: does not count towards rows_loaded.
KEY_LIST_SCHEMA = pa.schema(
    [
        pa.field("entity", pa.string()),
        pa.field("business_key", pa.string()),
        *EXTRACT_FIELDS,
    ]
)


def entity_schema(entity: Entity) -> pa.Schema:
    fields = list(EXTRACT_FIELDS)
    for col in entity.columns:
        fields.append(pa.field(col.name, _ARROW_TYPES[col.kind]))
        if col.kind == "municipality":
            fields.append(pa.field("municipality_key", pa.string()))
    return pa.schema(fields)


# --------------------------------------------------------------------------------------------------
# Code lists: what senders write -> reference keys (seeds/)
# --------------------------------------------------------------------------------------------------

OWNER_TYPES_DE = {"municipal": "kommunal", "private": "privat"}


def _code_index(kind: str) -> dict[str, str]:
    norm = reference.normalise_name
    if kind == "measure_type":
        rows = reference.measure_types()
        pairs = [(r["measure_type_key"], r["measure_type_key"]) for r in rows]
        pairs += [(r["measure_type_label_de"], r["measure_type_key"]) for r in rows]
    elif kind == "status":
        rows = reference.project_statuses()
        pairs = [(r["status_key"], r["status_key"]) for r in rows]
        pairs += [(r["status_label_de"], r["status_key"]) for r in rows]
    elif kind == "owner_type":
        pairs = [(k, k) for k in OWNER_TYPES_DE] + [(v, k) for k, v in OWNER_TYPES_DE.items()]
        pairs += [("Kommune", "municipal"), ("Privat/Gewerbe", "private"), ("gewerblich", "private")]
    else:
        raise ValueError(kind)
    return {norm(text): key for text, key in pairs}


def match_code(kind: str, text: str | None) -> str | None:
    if text is None:
        return None
    if kind == "municipality":
        return reference.match_municipality(text)
    return _code_index(kind).get(reference.normalise_name(text))


def label_de(kind: str, key: str) -> str:
    """The German label an extract writes for a code (the database stores keys)."""
    if kind == "measure_type":
        return {r["measure_type_key"]: r["measure_type_label_de"] for r in reference.measure_types()}[key]
    if kind == "status":
        return {r["status_key"]: r["status_label_de"] for r in reference.project_statuses()}[key]
    if kind == "owner_type":
        return OWNER_TYPES_DE[key]
    raise ValueError(kind)
