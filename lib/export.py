"""Write result rows as CSV or XLSX downloads, safe to open in a spreadsheet.

Every text cell that a spreadsheet would run as a formula is neutralised, and the
download's file name cannot inject a header.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import BinaryIO
from urllib.parse import quote

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

CSV_CHUNK_CHARS = 16_384
XLSX_MAX_CELL_CHARS = 32_767  # Excel's limit for one cell
MAX_FILENAME_CHARS = 100
FALLBACK_FILENAME = "batch"

_FORMULA_TRIGGERS = ("=", "+", "-", "@")
# Leading characters a spreadsheet skips before deciding that a cell is a formula.
_LEADING_IGNORED = re.compile(r"^[\s\x00-\x1f\x7f]*")
# Characters XML 1.0 cannot carry (openpyxl raises IllegalCharacterError on the C0 ones).
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
_DISPLAY_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]+")


def neutralise_cell(value: object) -> str:
    """The cell as text, prefixed with `'` when a spreadsheet would run it as a formula.

    Numbers (not booleans) are returned as they are written: a number cannot be a
    formula. None becomes "".
    """
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    text = value if isinstance(value, str) else str(value)
    if text.startswith(("\t", "\r")):
        return "'" + text
    rest = text[_LEADING_IGNORED.match(text).end():]  # type: ignore[union-attr]  # the pattern always matches
    if rest.startswith(_FORMULA_TRIGGERS):
        return "'" + text
    return text


def iter_csv(columns: list[str], rows: Iterable[Mapping[str, object]]) -> Iterator[bytes]:
    """Stream the rows as UTF-8 CSV with a BOM and CRLF line ends, in chunks of a few KB."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")  # so that Excel reads the file as UTF-8
    writer.writerow([neutralise_cell(column) for column in columns])
    for row in rows:
        writer.writerow([neutralise_cell(row.get(column)) for column in columns])
        if buffer.tell() >= CSV_CHUNK_CHARS:
            yield _take(buffer)
    if buffer.tell():
        yield _take(buffer)


def _take(buffer: io.StringIO) -> bytes:
    chunk = buffer.getvalue().encode("utf-8", errors="replace")  # a lone surrogate becomes "?"
    buffer.seek(0)
    buffer.truncate()
    return chunk


def write_xlsx(
    columns: list[str], rows: Iterable[Mapping[str, object]], fileobj: BinaryIO, *, bold_header: bool = True
) -> None:
    """Write the rows as a one-sheet workbook to `fileobj`, streaming (memory stays flat)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Results")
    header = []
    for column in columns:
        cell = WriteOnlyCell(sheet, value=xlsx_cell(column))
        if bold_header:
            cell.font = Font(bold=True)
        header.append(cell)
    sheet.append(header)
    for row in rows:
        sheet.append([xlsx_cell(row.get(column)) for column in columns])
    workbook.save(fileobj)


def xlsx_cell(value: object) -> str | int | float:
    """The value to store in an XLSX cell: finite numbers as numbers, else safe text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    text = "" if value is None else str(value)
    # Clean first: a character removed here must not uncover a formula.
    return neutralise_cell(_XML_ILLEGAL.sub("", text))[:XLSX_MAX_CELL_CHARS]


def safe_filename(name: str, ext: str) -> str:
    """A download file name from a batch name: ASCII `[A-Za-z0-9._ -]` only, never empty."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    stem = _FILENAME_UNSAFE.sub("_", ascii_name)
    stem = re.sub(r"\s+", " ", stem).strip(" ._-")
    stem = stem[:MAX_FILENAME_CHARS].rstrip(" ._-") or FALLBACK_FILENAME
    extension = re.sub(r"[^A-Za-z0-9]", "", ext)[:10]
    return f"{stem}.{extension}" if extension else stem


def content_disposition(name: str, ext: str) -> str:
    """A `Content-Disposition: attachment` value with an ASCII name and the UTF-8 original."""
    display = re.sub(r"\s+", " ", _DISPLAY_UNSAFE.sub("_", name)).strip()[:MAX_FILENAME_CHARS].strip()
    display = display or FALLBACK_FILENAME
    extension = re.sub(r"[^A-Za-z0-9]", "", ext)[:10]
    original = f"{display}.{extension}" if extension else display
    return (
        f'attachment; filename="{safe_filename(name, ext)}"; '
        f"filename*=UTF-8''{quote(original, safe='', errors='replace')}"
    )
