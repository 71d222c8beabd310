"""Delimited text files (CSV as municipalities and the funding database export them) read row by row.

Belongs here: the text format only: encoding (UTF-8 with or without BOM, Windows-1252, Latin-1, or
``auto``), the delimiter (``;``, ``,``, tab, ``|``, or taken from the header line), header names, the row
number a person sees in an editor (header = line 1, blank lines count as lines but are no rows), and
**per-row tolerance**: a row that cannot be read — a byte that is no character in the file's encoding, a
NUL byte, a quote that is not closed, more or fewer fields than the header — is returned as a malformed
row (``Rejection`` with row number, German reason and the raw text shortened) and every other row is read.
A file fails as a whole (``UnreadableFile``) only when it cannot be read at all: empty, no usable header
line, binary or UTF-16. Typing and checking values is the families' business; header maps are
``zi_warehouse/columnar.py``.

Encoding ``auto``: UTF-8 when the file is valid UTF-8; otherwise the file is UTF-8 with stray bytes if
more of its lines hold multi-byte UTF-8 characters than lines that are invalid UTF-8 (an export that is
UTF-8 but for a pasted byte), and Windows-1252 if not (a German Windows export: every umlaut is invalid
UTF-8). In Windows-1252 the five undefined bytes (0x81, 0x8D, 0x8F, 0x90, 0x9D) are stray bytes.

The usual file (valid UTF-8, nothing malformed) is read by ``pyarrow.csv`` straight from an Arrow buffer,
and the checks that find malformed rows run as Arrow kernels over the lines: no Python object per row (a
test holds the surfaces reader to that). Only a file with something to reject goes line by line in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from zi_warehouse.accounting import Rejection

DELIMITERS = (";", ",", "\t", "|")
#: Separator names as data files write them (``auto``: the most frequent delimiter of the header line).
SEPARATORS = {"auto": None, "semicolon": ";", "comma": ",", "tab": "\t", "pipe": "|"}
ENCODINGS = ("auto", "utf-8", "cp1252", "latin-1")
_ENCODING_LABEL = {"utf-8": "UTF-8", "cp1252": "Windows-1252", "latin-1": "Latin-1 (ISO-8859-1)"}
_BOM = b"\xef\xbb\xbf"
#: Raw text of a malformed row in its rejection, at most this long (the sender finds the row by its number).
RAW_TEXT_CHARS = 120


class UnreadableFile(ValueError):
    """The file cannot be read at all; the message is German."""


@dataclass
class Delimited:
    """A delimited file read as strings: the rows that could be split, and those that could not."""

    table: pa.Table  # one string column per header (names stripped), plus ``_row_number``
    delimiter: str
    encoding: str  # the encoding the file was read with: utf-8, cp1252 or latin-1
    malformed: list[Rejection] = field(default_factory=list)  # one per row that could not be read

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len({r.row_number for r in self.malformed})


def sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in DELIMITERS}
    return max(counts, key=counts.get) if max(counts.values()) else ","


def shorten(text: str, limit: int = RAW_TEXT_CHARS) -> str:
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _delimiter(separator: str, header_line: str) -> str:
    if separator not in SEPARATORS:
        raise ValueError(f"unknown separator {separator!r}; one of {sorted(SEPARATORS)}")
    return SEPARATORS[separator] or sniff_delimiter(header_line)


def parse_header(line: str, delimiter: str) -> list[str]:
    """The header names of one header line (quotes as CSV has them), stripped."""
    row = pacsv.read_csv(
        pa.py_buffer(line.encode("utf-8") + b"\n"),
        read_options=pacsv.ReadOptions(autogenerate_column_names=True),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=False),
    ).to_pylist()[0]
    return [str(h).strip() for h in row.values()]


def _decode_header(header: bytes, encoding: str) -> str:
    if b"\x00" in header:
        raise UnreadableFile(
            "Datei ist keine lesbare Textdatei (Nullbytes in der Kopfzeile; UTF-16?). "
            "Bitte als CSV in UTF-8 oder Windows-1252 exportieren."
        )
    header = header.rstrip(b"\r\n")
    if encoding in ("auto", "utf-8"):
        try:
            return header.removeprefix(_BOM).decode("utf-8")
        except UnicodeDecodeError:
            if encoding == "utf-8":
                raise UnreadableFile(
                    "Kopfzeile ist kein gültiges UTF-8; bitte die Datei als UTF-8 exportieren."
                ) from None
    try:
        return header.decode("latin-1" if encoding == "latin-1" else "cp1252")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"Kopfzeile nicht lesbar: Byte 0x{header[exc.start]:02X} ist in Windows-1252 kein Zeichen."
        ) from exc


def read_header(path: Path, separator: str = "auto", encoding: str = "auto") -> tuple[list[str], str]:
    """(header names, delimiter) of a delimited file, without reading the rest of it."""
    with open(path, "rb") as fh:
        header = fh.readline()
    if not header.strip():
        raise UnreadableFile("Datei ist leer oder die Kopfzeile fehlt.")
    line = _decode_header(header, encoding)
    delimiter = _delimiter(separator, line)
    return parse_header(line, delimiter), delimiter


# --- the usual file: checks as Arrow kernels, pyarrow.csv reads the buffer -------------------------------


def _whole(buf: pa.Buffer) -> pa.Array:
    """The buffer as a one-element binary array (no copy)."""
    offsets = pa.array([0, buf.size], pa.int64()).buffers()[1]
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, buf])


def _clean_utf8(buf: pa.Buffer) -> bool:
    """True if every line of the UTF-8 file is a row pyarrow.csv reads as a person sees it: valid UTF-8,
    no NUL byte, no blank line (it would shift the row numbers), no quote left open (it would swallow the
    next line)."""
    whole = _whole(buf)
    try:
        whole.cast(pa.large_string())  # validates UTF-8
    except pa.ArrowInvalid:
        return False
    if pc.count_substring(whole, "\x00")[0].as_py():
        return False
    lines = pc.split_pattern(whole, "\n").flatten()
    if len(lines) and lines[len(lines) - 1].as_py() == b"":
        lines = lines.slice(0, len(lines) - 1)  # the newline that ends the last line
    if pc.any(pc.match_substring_regex(lines, r"^[ \t\r]*$")).as_py():
        return False
    quotes = pc.count_substring(lines, '"')
    return not pc.any(pc.not_equal(pc.bit_wise_and(quotes, 1), 0)).as_py()


def _field_count_rejection(row_number: int, text: str, expected: int, actual: int, delimiter: str) -> Rejection:
    shown = {"\t": "Tabulator"}.get(delimiter, delimiter)
    return Rejection(
        row_number,
        None,
        shorten(text),
        "row_field_count",
        f"Zeile hat {actual} statt {expected} Felder (Trennzeichen '{shown}'): vermutlich ein "
        "Trennzeichen im Text ohne Anführungszeichen oder eine unvollständige Zeile. Bitte die "
        "Zeile korrigieren.",
    )


def _read_rows(
    data: pa.Buffer,
    names: list[str],
    delimiter: str,
    physical: np.ndarray | None,
) -> tuple[pa.Table, list[Rejection]]:
    """Rows of ``data`` (UTF-8, without header line, no blank lines) as strings; a row whose field count
    differs from the header's is a malformed row. ``physical[i]`` is the line number of the i-th line
    (``None``: the lines are 2, 3, ... in order)."""
    invalid: list[tuple[int, int, int, str]] = []

    def handler(row) -> str:
        invalid.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    table = pacsv.read_csv(
        data,
        # use_threads=False: only then does pyarrow tell the number of an invalid row
        read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24, use_threads=False),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in names}, strings_can_be_null=False),
    )
    n_lines = table.num_rows + len(invalid)
    lines = physical if physical is not None else np.arange(2, n_lines + 2, dtype=np.int64)
    if not invalid:
        return table.append_column("_row_number", pa.array(lines, pa.int64())), []
    bad_index = np.array([number - 1 for number, *_ in invalid], dtype=np.int64)
    malformed = [
        _field_count_rejection(int(lines[i]), text, expected, actual, delimiter)
        for i, (_, expected, actual, text) in zip(bad_index, invalid)
    ]
    good = np.delete(lines, bad_index)
    return table.append_column("_row_number", pa.array(good, pa.int64())), malformed


# --- anything else: line by line ------------------------------------------------------------------------


@dataclass
class DecodedLines:
    """A text file's lines decoded one by one; lines that could not be decoded as malformed rows."""

    lines: list[str | None]  # index + 1 = line number; None where the line could not be decoded
    malformed: list[Rejection]
    encoding: str


def _decode_line(raw: bytes, encoding: str) -> tuple[str | None, str | None]:
    """(text, None), or (None, German reason) for a line that is no text in ``encoding``."""
    if b"\x00" in raw:
        return None, "Zeile enthält ein Nullbyte (0x00); bitte die Zeile korrigieren oder die Datei neu exportieren."
    try:
        return raw.decode(encoding), None
    except UnicodeDecodeError as exc:
        return None, (
            f"Zeile enthält das Byte 0x{raw[exc.start]:02X} (Zeichen {exc.start + 1}), das in "
            f"{_ENCODING_LABEL[encoding]} kein Zeichen ist; die übrigen Zeilen sind geladen. "
            "Bitte das Zeichen korrigieren."
        )


def _choose_encoding(raw_lines: list[bytes]) -> str:
    """``auto``: UTF-8 if valid or if multi-byte lines outnumber invalid ones (stray bytes), else cp1252."""
    invalid = multibyte = 0
    for raw in raw_lines:
        if raw.isascii():
            continue
        try:
            raw.decode("utf-8")
            multibyte += 1
        except UnicodeDecodeError:
            invalid += 1
    return "utf-8" if multibyte > invalid or invalid == 0 else "cp1252"


def decode_lines(data: bytes, encoding: str = "auto") -> DecodedLines:
    """Every line of ``data`` (LF or CR LF; a UTF-8 BOM skipped) decoded on its own; a line that is no
    text in the file's encoding is a malformed row (``row_encoding``), the others are read."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; one of {ENCODINGS}")
    raw_lines = data.removeprefix(_BOM).split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the newline that ends the last line
    if encoding == "auto":  # a BOM says UTF-8 whatever the bytes after it
        used = "utf-8" if data.startswith(_BOM) else _choose_encoding(raw_lines)
    else:
        used = encoding
    lines: list[str | None] = []
    malformed = []
    for number, raw in enumerate(raw_lines, start=1):
        text, problem = _decode_line(raw.removesuffix(b"\r"), used)
        lines.append(text)
        if problem:
            malformed.append(
                Rejection(
                    number,
                    None,
                    shorten(raw.decode(used, errors="replace").replace("\x00", "�")),
                    "row_encoding",
                    problem,
                )
            )
    return DecodedLines(lines, malformed, used)


def rows_from_lines(
    lines: list[str | None], names: list[str], delimiter: str, first: int = 2
) -> tuple[pa.Table, list[Rejection]]:
    """Rows from decoded lines (``lines[0]`` is line ``first``; None = already rejected): blank lines are
    skipped, a line with a quote left open or the wrong number of fields is a malformed row."""
    kept: list[str] = []
    numbers: list[int] = []
    malformed = []
    for number, text in enumerate(lines, start=first):
        if text is None or not text.strip():
            continue
        if text.count('"') % 2:
            malformed.append(
                Rejection(
                    number,
                    None,
                    shorten(text),
                    "row_quote_unclosed",
                    "Anführungszeichen in der Zeile nicht geschlossen; bitte die Zeile "
                    "korrigieren (ein Wert darf nicht über mehrere Zeilen gehen).",
                )
            )
            continue
        kept.append(text)
        numbers.append(number)
    if not kept:
        return _empty(names), malformed
    data = pa.py_buffer(("\n".join(kept) + "\n").encode("utf-8"))
    table, bad_fields = _read_rows(data, names, delimiter, np.array(numbers, dtype=np.int64))
    return table, sorted(malformed + bad_fields, key=lambda r: r.row_number)


def _empty(names: list[str]) -> pa.Table:
    return pa.table({**{h: pa.array([], pa.string()) for h in names}, "_row_number": pa.array([], pa.int64())})


def _names(header_text: str, separator: str) -> tuple[list[str], str]:
    if not header_text.strip():
        raise UnreadableFile("Die erste Zeile ist leer; erwartet wird die Kopfzeile.")
    delimiter = _delimiter(separator, header_text)
    names = parse_header(header_text, delimiter)
    if len(set(names)) != len(names):
        raise UnreadableFile("Kopfzeile nennt Spalten doppelt: " + ", ".join(f"'{h}'" for h in names) + ".")
    return names, delimiter


def read_delimited(path: Path, separator: str = "auto", encoding: str = "auto") -> Delimited:
    """A delimited text file as an Arrow table of strings (header names kept) plus ``_row_number``, and
    its malformed rows. Raises ``UnreadableFile`` when the file cannot be read at all."""
    with pa.OSFile(str(path), "rb") as fh:
        buf = fh.read_buffer()
    if buf.size == 0:
        raise UnreadableFile("Datei ist leer.")
    try:
        if encoding in ("auto", "utf-8") and _clean_utf8(buf):
            head = buf.slice(0, min(buf.size, 1 << 20)).to_pybytes()
            end = head.find(b"\n")
            header = head if end < 0 else head[: end + 1]
            names, delimiter = _names(header.removeprefix(_BOM).rstrip(b"\r\n").decode("utf-8"), separator)
            body = buf.slice(len(header))
            table, malformed = _read_rows(body, names, delimiter, None) if body.size else (_empty(names), [])
            return Delimited(table, delimiter, "utf-8", malformed)
        data = buf.to_pybytes()
        decoded = decode_lines(data, encoding)
        if not decoded.lines or decoded.lines[0] is None:
            first = data.removeprefix(_BOM).split(b"\n", 1)[0]
            raise UnreadableFile(
                "Datei ist keine lesbare Textdatei (Nullbytes in der Kopfzeile; UTF-16?). Bitte als CSV in UTF-8 "
                "oder Windows-1252 exportieren."
                if b"\x00" in first
                else f"Kopfzeile nicht lesbar: {decoded.malformed[0].message_de if decoded.malformed else 'leer'}"
            )
        names, delimiter = _names(decoded.lines[0], separator)
        table, malformed = rows_from_lines(decoded.lines[1:], names, delimiter)
    except pa.ArrowInvalid as exc:
        raise UnreadableFile(f"Datei nicht als CSV lesbar: {exc}") from exc
    malformed = sorted(decoded.malformed + malformed, key=lambda r: r.row_number)
    return Delimited(table, delimiter, decoded.encoding, malformed)
