"""Write result rows as CSV or XLSX downloads, safe to open in a spreadsheet.

Every text cell that a spreadsheet would run as a formula is neutralised, and the
download's file name cannot inject a header.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

CSV_CHUNK_CHARS = 16_384
CSV_DELIMITERS = (",", ";", "\t")
XLSX_MAX_CELL_CHARS = 32_767  # Excel's limit for one cell
XLSX_MAX_LINK_CHARS = 2_079  # Excel's limit for a link's address; a longer one stays text
MAX_FILENAME_CHARS = 100
FALLBACK_FILENAME = "batch"

_FORMULA_TRIGGERS = ("=", "+", "-", "@")
# Leading characters a spreadsheet skips before deciding that a cell is a formula.
_LEADING_IGNORED = re.compile(r"^[\s\x00-\x1f\x7f]*")
# Characters XML 1.0 cannot carry (openpyxl raises IllegalCharacterError on the C0 ones).
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
_DISPLAY_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]+")
# Long-text columns besides the answers and questions: wrapped, 50 characters wide.
_LONG_TEXT = re.compile(r"sentence\d+|problemdetails|.*explanation|.*improvement|notes|comments?")
_NAME_NOISE = re.compile(r"[\s_\-]+")
_FIXED_WIDTHS = {"citationhead": 40, "searchquery": 40, "department": 30, "model": 20}
_NOT_IN_URL = re.compile(r"[\s\x00-\x1f\x7f\"<>]")
_BOLD = Font(bold=True)
LIST_SEPARATOR = " | "  # how a list cell reads in CSV and XLSX
_WRAP = Alignment(wrap_text=True, vertical="top")
_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
_DATE_FORMAT = "yyyy-mm-dd"


def neutralise_cell(value: object) -> str:
    """The cell as text, prefixed with `'` when a spreadsheet would run it as a formula.

    Numbers (not booleans) are returned as they are written: a number cannot be a
    formula. None becomes ""; a list (an analyzer's ideas found, changed facts) is joined
    with " | ".
    """
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = LIST_SEPARATOR.join("" if v is None else str(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    text = value if isinstance(value, str) else str(value)
    if text.startswith(("\t", "\r")):
        return "'" + text
    rest = text[_LEADING_IGNORED.match(text).end():]  # type: ignore[union-attr]  # the pattern always matches
    if rest.startswith(_FORMULA_TRIGGERS):
        return "'" + text
    return text


def iter_csv(columns: list[str], rows: Iterable[Mapping[str, object]], delimiter: str = ",") -> Iterator[bytes]:
    """Stream the rows as UTF-8 CSV with a BOM and CRLF line ends, in chunks of a few KB.

    `delimiter` is `,` `;` or tab: the uploaded file's, so that the results open the way it did.
    """
    if delimiter not in CSV_DELIMITERS:
        raise ValueError(f"delimiter must be one of {CSV_DELIMITERS!r}, not {delimiter!r}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
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
    columns: list[str],
    rows: Iterable[Mapping[str, object]],
    fileobj: BinaryIO,
    *,
    bold_header: bool = True,
    details: Sequence[tuple[str, object]] | None = None,
) -> None:
    """Write the rows as a workbook to `fileobj`, streaming (memory stays flat).

    The "Results" sheet has a frozen header row with a filter, a width per column by its
    name, long text wrapped, http(s) links in `...Url` columns live, and dates as Excel
    dates. With `details` ((field, value) pairs), a second sheet "Batch" lists them.
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Results")
    layouts = [column_layout(column) for column in columns]
    for letter, layout in zip(map(get_column_letter, range(1, len(columns) + 1)), layouts):
        sheet.column_dimensions[letter].width = layout.width  # before the first row: widths come first in the XML
    sheet.freeze_panes = "A2"
    sheet.append([_header_cell(sheet, column, bold_header) for column in columns])
    count = 0
    for count, row in enumerate(rows, start=1):
        sheet.append([_cell(sheet, row.get(column), layout) for column, layout in zip(columns, layouts)])
    if columns:  # the filter is written after the rows, so it can span exactly them
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{count + 1}"
    if details is not None:
        _write_details(workbook, details)
    workbook.save(fileobj)


@dataclass(frozen=True)
class ColumnLayout:
    """How a results column is shown: its width in characters, wrapped or not, links or not."""

    width: float
    wrap: bool = False
    links: bool = False


def column_layout(name: str) -> ColumnLayout:
    """The layout of a column, from its name: answers wide and wrapped, ids narrow, links live."""
    key = _NAME_NOISE.sub("", name).casefold().removesuffix("(result)")
    last = key.rsplit(".", 1)[-1]  # "expert.sentence1Score" is a score, not a sentence
    if last in _FIXED_WIDTHS:
        return ColumnLayout(_FIXED_WIDTHS[last])
    if last in ("answer", "englishanswer"):
        return ColumnLayout(80, wrap=True)
    if _LONG_TEXT.fullmatch(last) or "question" in last:
        return ColumnLayout(50, wrap=True)
    if last == "error":
        return ColumnLayout(40, wrap=True)
    if last.endswith("url"):
        return ColumnLayout(45, links=True)
    if last.endswith("id"):
        return ColumnLayout(26)  # an ObjectId is 24 characters
    return ColumnLayout(min(max(len(name) + 2, 10), 30))


def _header_cell(sheet: Any, column: str, bold: bool) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=xlsx_cell(column))
    if bold:
        cell.font = _BOLD
    return cell


def _cell(sheet: Any, value: object, layout: ColumnLayout) -> object:
    """What to append for one value: a plain value when it needs no style, else a styled cell."""
    if isinstance(value, (dt.datetime, dt.date)):
        cell = WriteOnlyCell(sheet, value=excel_date(value))
        cell.number_format = _DATETIME_FORMAT if isinstance(value, dt.datetime) else _DATE_FORMAT
        return cell
    stored = xlsx_cell(value)
    if layout.links and isinstance(stored, str) and is_link(stored):
        cell = WriteOnlyCell(sheet, value=stored)
        cell.hyperlink = stored
        cell.style = "Hyperlink"
        return cell
    if layout.wrap and isinstance(stored, str) and stored:
        cell = WriteOnlyCell(sheet, value=stored)
        cell.alignment = _WRAP
        return cell
    return stored


def _write_details(workbook: Workbook, details: Sequence[tuple[str, object]]) -> None:
    """The "Batch" sheet: one (field, value) pair a row, field names bold."""
    sheet = workbook.create_sheet("Batch")
    sheet.column_dimensions["A"].width = 24
    sheet.column_dimensions["B"].width = 80
    for field, value in details:
        name = WriteOnlyCell(sheet, value=xlsx_cell(field))
        name.font = _BOLD
        shown = value if isinstance(value, (dt.datetime, dt.date)) else _detail_text(value)
        sheet.append([name, _cell(sheet, shown, ColumnLayout(80, wrap=True, links=True))])


def _detail_text(value: object) -> object:
    """A details value as one cell: lists joined by commas, mappings as `key: value` pairs."""
    if isinstance(value, Mapping):
        return "; ".join(f"{key}: {item}" for key, item in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(map(str, value))
    return value


def xlsx_cell(value: object) -> str | int | float:
    """The value to store in an XLSX cell: finite numbers as numbers, else safe text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    if isinstance(value, (list, tuple)):
        value = LIST_SEPARATOR.join("" if v is None else str(v) for v in value)
    text = "" if value is None else str(value)
    # Clean first: a character removed here must not uncover a formula.
    return neutralise_cell(_XML_ILLEGAL.sub("", text))[:XLSX_MAX_CELL_CHARS]


def excel_date(value: dt.date) -> dt.date:
    """A date or datetime as Excel can hold it: an aware datetime in UTC, without its zone."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def is_link(text: str) -> bool:
    """Whether the text is an http(s) URL Excel can open as a link (one address, under its length cap)."""
    if len(text) > XLSX_MAX_LINK_CHARS or _NOT_IN_URL.search(text):
        return False
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


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
