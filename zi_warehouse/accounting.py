"""Row accounting: what every reader returns for a landed file, and how rejections are described.

Every row that arrives is either loaded (in a ``raw.<source>__<entity>`` table, with lineage columns) or
rejected (in ``raw.rejected_rows``, with file, sheet, row, column, value found, rule and a German
message). ``rows_read == rows_loaded + rows_rejected`` holds for every file; ``FileResult.check`` enforces it.

A rule key always travels with its German message: a row's rejection carries both, and a whole file that
failed or was held back keeps its rule next to its message (``FileResult.error_rule``, the ledger's
``error_rule``). The German label and explanation of every key are in ``seeds/rule_texts.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

#: Lineage columns every raw table carries (PUDL-style: where each row came from).
LINEAGE_FIELDS = [
    pa.field("_source_file", pa.string()),  # path relative to the landing folder, e.g. forecasts/x.xlsx
    pa.field("_sheet", pa.string()),  # sheet or archive member; NULL for flat files
    pa.field("_row_number", pa.int64()),  # 1-based row in the sheet or file as a person would count it
]

#: Columns whose values are personal data: never copied into rejections, marts or published files.
PERSONAL_COLUMNS = frozenset({"contact_name", "contact_email", "contact_phone"})
MASKED_VALUE = "[personenbezogen, ausgeblendet]"

#: What became of a landed file. ``duplicate``: a byte-identical copy of a delivery already loaded, not loaded
#: again and not a failure (nothing was wrong with it, its sender has nothing to do), so no count of failed files
#: or rejections includes it.
OUTCOMES = ("loaded", "partially_loaded", "rejected", "failed", "blocked", "duplicate")

#: Rules that refuse a whole file without asking anything of its sender (no correction, no resend): a byte-identical
#: copy of a delivery already loaded. A file refused for one of them has the outcome ``duplicate``.
NOTHING_TO_DO_RULES = frozenset({"duplicate_delivery"})


#: How a rejected forecast row's message names its project (the sender finds a row by its project id faster than by
#: its number); ``PROJECT_PREFIX_PATTERN`` reads the id back from a message (rows stored before ``project_id``).
PROJECT_PREFIX = "Projekt {}: "
PROJECT_PREFIX_PATTERN = r"^Projekt (.+?): "


@dataclass(frozen=True)
class Rejection:
    """One reason why one row (or the whole file, row_number None) was not loaded."""

    row_number: int | None
    column: str | None
    value_found: object
    rule: str  # stable machine name, e.g. "requested_le_total_cost"
    message_de: str  # what the sender should do, in German
    sheet: str | None = None
    project_id: str | None = None  # forecast workbooks: the project of the row, as its sender wrote it

    def as_record(self) -> dict:
        value = self.value_found
        if self.column in PERSONAL_COLUMNS and value not in (None, ""):
            value = MASKED_VALUE
        return {
            "sheet": self.sheet,
            "row_number": self.row_number,
            "project_id": self.project_id,
            "column_name": self.column,
            "value_found": None if value is None else str(value)[:200],
            "rule": self.rule,
            "message_de": self.message_de,
        }


@dataclass
class FileResult:
    """What a reader made of one landed file (or one database extract)."""

    source_family: str
    source_file: str  # relative to the landing folder; the key of the ingestion ledger
    file_hash: str
    rows_read: int = 0
    tables: dict[str, pa.Table] = field(default_factory=dict)  # raw entity -> good rows
    rejections: list[Rejection] = field(default_factory=list)
    municipality_key: str | None = None
    period: str | None = None  # e.g. "2022-Q3" for a forecast submission, extract sequence for funding
    error_message: str | None = None  # set when the whole file failed (unreadable, unknown headers, ...)
    error_rule: str | None = None  # the rule key of error_message (a failed or a blocked file)
    #: What the data team (not the sender) should look at, e.g. a proposed header map entry; never shown to
    #: the sender, kept in the ledger and shown in the quality report.
    data_team_note: str | None = None
    file_size_bytes: int | None = None
    #: Entities that hold one row per source row; empty means every table does. Secondary tables
    #: (e.g. a zip's station metadata) do not count towards rows_loaded.
    primary_tables: tuple[str, ...] = ()
    #: Set by a reader that must not load this file yet (e.g. a funding delta whose predecessor is
    #: missing); the file is retried on the next run.
    blocked: bool = False

    @property
    def rows_rejected(self) -> int:
        return len({(r.sheet, r.row_number) for r in self.rejections if r.row_number is not None})

    @property
    def rows_loaded(self) -> int:
        # A file may feed several entities (e.g. a zip): rows_loaded counts source rows, so readers put
        # each source row into exactly one "primary" table; see ``primary_tables``.
        return sum(
            t.num_rows for name, t in self.tables.items() if not self.primary_tables or name in self.primary_tables
        )

    @property
    def outcome(self) -> str:
        if self.blocked:
            return "blocked"
        if self.error_message is not None and self.rows_loaded == 0:
            return "duplicate" if self.error_rule in NOTHING_TO_DO_RULES else "failed"
        if self.rows_loaded == 0 and self.rows_rejected > 0:
            return "rejected"
        if self.rows_rejected > 0:
            return "partially_loaded"
        return "loaded"

    def ledger_record(self) -> dict:
        """The file's row of ``raw.ingestion_files`` (what the feedback workbook and the e-mail report), without
        the time it was loaded."""
        return {
            "source_family": self.source_family,
            "source_file": self.source_file,
            "file_name": Path(self.source_file).name,
            "file_hash": self.file_hash,
            "file_size_bytes": self.file_size_bytes,
            "municipality_key": self.municipality_key,
            "period": self.period,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "outcome": self.outcome,
            "error_message": self.error_message,
            "error_rule": self.error_rule,
            "data_team_note": self.data_team_note,
        }

    def rejection_records(self) -> list[dict]:
        """The file's rows of ``raw.rejected_rows``."""
        return [
            {"source_family": self.source_family, "source_file": self.source_file, **r.as_record()}
            for r in self.rejections
        ]

    def fail(self, message_de: str, rule: str = "file_unreadable") -> FileResult:
        """Reject the whole file: every row it had counts as rejected, nothing is loaded."""
        self.error_message = message_de
        self.error_rule = rule
        self.tables = {}
        self.rejections = [Rejection(None, None, Path(self.source_file).name, rule, message_de)]
        return self

    def block(self, message_de: str, rule: str) -> FileResult:
        """Hold the whole file back (nothing loaded, nothing rejected); it is read again next run."""
        self.blocked = True
        self.error_message = message_de
        self.error_rule = rule
        self.tables = {}
        self.rejections = []
        return self

    def check(self) -> None:
        """Raise if rows were lost: read must equal loaded plus rejected (whole-file failures excepted)."""
        if self.blocked or (self.error_message is not None and self.rows_loaded == 0):
            return
        if self.rows_read != self.rows_loaded + self.rows_rejected:
            raise AssertionError(
                f"{self.source_file}: rows read {self.rows_read} != loaded {self.rows_loaded} "
                f"+ rejected {self.rows_rejected}"
            )
