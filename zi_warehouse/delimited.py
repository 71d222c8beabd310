"""Delimited text files (CSV as municipalities export them) read into Arrow as strings.

Belongs here: the text format only: encoding (UTF-8 with or without BOM, Windows-1252), the delimiter
(``;``, ``,``, tab, ``|``, taken from the header line), header names, and the row number a person sees in
an editor. Typing and checking the values is the families' business (``zi_warehouse/trees/``,
``zi_warehouse/surfaces/``); header maps are ``zi_warehouse/columnar.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

DELIMITERS = (";", ",", "\t", "|")


def sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in DELIMITERS}
    return max(counts, key=counts.get) if max(counts.values()) else ","


def read_delimited_as_strings(path: Path) -> tuple[pa.Table, str]:
    """A delimited text file as an Arrow table of strings (header names kept) plus ``_row_number``.

    ``_row_number`` is the line a person sees in an editor (header = line 1). Encoding: UTF-8 (with or
    without BOM), falling back to Windows-1252, which German office software still writes.
    """
    with path.open("rb") as fh:
        header_bytes = fh.readline()
    last_error: Exception | None = None
    # Arrow decodes UTF-8 natively (and skips a BOM); any other encoding goes through a Python codec in
    # large blocks, which is fine for the rare Windows-1252 file.
    for encoding, arrow_encoding in (("utf-8-sig", "utf8"), ("cp1252", "cp1252")):
        try:
            first_line = header_bytes.decode(encoding).strip("\r\n")
            delimiter = sniff_delimiter(first_line)
            headers = next(iter(pacsv.read_csv(
                pa.py_buffer(first_line.encode("utf-8") + b"\n"),
                read_options=pacsv.ReadOptions(autogenerate_column_names=True),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=False),
            ).to_batches())).to_pylist()[0].values()
            headers = [str(h).strip() for h in headers]
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(encoding=arrow_encoding, block_size=1 << 24),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(
                    column_types={h: pa.string() for h in headers}, strings_can_be_null=False
                ),
            )
            table = table.rename_columns([str(c).strip() for c in table.column_names])
            rows = pa.array(np.arange(2, table.num_rows + 2, dtype=np.int64))
            return table.append_column("_row_number", rows), delimiter
        except (UnicodeDecodeError, pa.ArrowInvalid) as exc:
            last_error = exc
            continue
    raise ValueError(f"Datei nicht als CSV lesbar: {last_error}")
