"""The quarterly report's building blocks: a number shown (:class:`Figure`), a table, a chart, a section.

What belongs here: these data structures and how a figure is written (German notation from
``zi_warehouse.german``; the unformatted value for ``data-value``). The sections fill them
(``sections/``), the template writes them (``html.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from zi_warehouse.german import format_number


def mart_number(value: Any) -> Any:
    """Decimals from DuckDB as float (the report shows them rounded; data-value keeps full precision)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return float(value)


@dataclass(frozen=True)
class Figure:
    """One number the report shows: its stable key, its value as in the mart, and how it is written."""

    key: str
    value: Any
    decimals: int = 0
    unit: str = ""

    @property
    def text(self) -> str:
        return format_number(self.value, self.decimals, self.unit)

    @property
    def raw(self) -> str:
        """The unformatted value for data-value (empty when the mart has no value)."""
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return ""
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return repr(float(self.value)) if not isinstance(self.value, int) else str(self.value)


@dataclass
class DataTable:
    headers: list[str]
    rows: list[list[Any]]  # cells: str or Figure
    key: str = ""
    caption: str = ""

    @property
    def numeric(self) -> list[bool]:
        """Per column: every cell is a number (its header is then right-aligned over the numbers)."""
        return [
            bool(self.rows) and all(isinstance(row[i], Figure) for row in self.rows) for i in range(len(self.headers))
        ]


@dataclass
class Chart:
    key: str
    title: str
    svg: str
    table: DataTable
    note: str = ""


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    figures: list[Figure] = field(default_factory=list)  # headline figures (summary cards)
    charts: list[Chart] = field(default_factory=list)
    tables: list[DataTable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def all_figures(self):
        """Every Figure of the section: headline figures and the Figure cells of its tables."""
        yield from self.figures
        for table in [*(c.table for c in self.charts), *self.tables]:
            for row in table.rows:
                yield from (cell for cell in row if isinstance(cell, Figure))
