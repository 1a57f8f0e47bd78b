"""Read an uploaded CSV or XLSX of questions into typed rows.

The file type is decided by content, not by name. Every fault of the input becomes a
`lib.errors` exception with a stable code and a message that says what to fix; the
errors of `csv`, `zipfile` and `openpyxl` are translated here and go no further.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gc
import io
import re
import sys
import traceback
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any, Literal
from xml.etree.ElementTree import iterparse

import openpyxl
from openpyxl.worksheet._reader import WorkSheetParser
from openpyxl.xml.constants import SHEET_MAIN_NS

from lib.errors import AppError, BadRequest, PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

QUESTION_HEADERS = ("REDACTEDQUESTION", "QUESTION", "PROBLEM DETAILS")
CHAT_HEADERS = ("chatId",)
URL_HEADERS = ("URL", "REFERRINGURL")

# Zip-bomb guard: checked on the zip's declared sizes before openpyxl inflates anything
# (zipfile never inflates a member past its declared size).
MAX_UNCOMPRESSED_BYTES = 100 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_FLOOR_BYTES = 10 * 1024 * 1024
MAX_ZIP_MEMBERS = 10_000

# One warning per skipped row, up to this many; a summary line covers the rest, so that a
# file of a million blank rows does not produce a million-line response.
MAX_ROW_WARNINGS = 100

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OTHER_BINARY_MAGIC = {
    b"%PDF": "a PDF document",
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"GIF87a": "a GIF image",
    b"GIF89a": "a GIF image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip archive",
}
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_HEADER_NOISE = re.compile(r"[\s_\-]+")
_DELIMITERS = (",", ";", "\t")
# For a one-column file: a delimiter absent from the text, so that unquoted commas in
# a question do not split it. The csv module still honours quotes.
_NO_DELIMITER_CANDIDATES = ("\x1f", "\x1e", "\x1d", "\x1c")
_DELIMITER_SCAN_CHARS = 65_536
# Mixed encodings: a line that is valid UTF-8 counts as UTF-8 evidence only if its
# non-ASCII characters are accented Latin letters or typographic punctuation; a line of a
# Windows-1252 file is valid UTF-8 only by accident ("Ã©"), and then rarely spells those.
_UTF8_EVIDENCE = frozenset(map(chr, range(0xC0, 0x100))) - {"×", "÷"} | frozenset("œŒ’‘“”«»–—…€\u00a0°")
MAX_LISTED_ROWS = 20  # row numbers spelled out in one warning's message
_SAVE_AS_HINT = "Save it as CSV (UTF-8) or as an Excel workbook (.xlsx) and upload it again."
_EMPTY_MESSAGE = "The file is empty. Upload a CSV or XLSX with a header row and questions."


@dataclass(frozen=True)
class ParsedRow:
    """One data row of the upload."""

    row_number: int  # spreadsheet row number (the header is row 1)
    question: str
    chat_label: str | None  # the chatId cell; None when blank or absent
    referring_url: str | None
    original: dict[str, str]  # every original column -> value, in column order


@dataclass(frozen=True)
class ParsedTable:
    """The rows of an upload, with the columns it was read by."""

    file_type: Literal["csv", "xlsx"]
    columns: list[str]  # original column names, made unique, in order
    question_column: str
    chat_column: str | None
    url_column: str | None
    rows: list[ParsedRow]
    # {"code", "message", "rowNumber"} each (rowNumber None when about many rows; then
    # "rowNumbers" or "count"): BLANK_QUESTION, MORE_BLANK_QUESTIONS, MIXED_ENCODING
    warnings: list[dict[str, Any]]
    delimiter: str | None = None  # the CSV's delimiter (`,` `;` or tab; `,` for one column); None for XLSX


@dataclass(frozen=True)
class DecodedText:
    """A CSV's text, and which of its lines (0-based, as `io.StringIO(text, newline="")` splits
    them) were read as Windows-1252 in a file otherwise UTF-8."""

    text: str
    fallback_lines: frozenset[int] = frozenset()


def parse_upload(
    data: bytes,
    filename: str | None,
    *,
    max_rows: int,
    max_columns: int = 200,
    max_cell_chars: int = 20_000,
) -> ParsedTable:
    """Parse an uploaded CSV or XLSX (first sheet) into question rows.

    `max_rows` caps the rows that have a question; reading stops as soon as it is
    passed. Raises BadRequest, UnsupportedMediaType or PayloadTooLarge, nothing else.
    """
    file_type = detect_file_type(data, filename)
    if file_type == "xlsx":
        # One column past the limit is enough to tell that a sheet is too wide.
        with _first_sheet(data, max_columns + 1) as records:
            return _build_table("xlsx", records, max_rows, max_columns, max_cell_chars)
    decoded = _decode_text(data)
    delimiter = detect_delimiter(decoded.text)
    fallback_rows: list[int] = []
    records = _csv_records(decoded, delimiter, fallback_rows)
    table = _build_table("csv", records, max_rows, max_columns, max_cell_chars)
    return replace(
        table,
        delimiter=delimiter if delimiter in _DELIMITERS else ",",
        warnings=_encoding_warnings(fallback_rows) + table.warnings,
    )


def detect_file_type(data: bytes, filename: str | None) -> Literal["csv", "xlsx"]:
    """Decide from the bytes (and, for an `.xlsx` name, the name) how to read an upload."""
    if not data.strip():
        raise BadRequest(_EMPTY_MESSAGE, code="EMPTY_FILE")
    if data.startswith(_ZIP_MAGIC):
        return "xlsx"
    if data.startswith(_OLE2_MAGIC):
        raise UnsupportedMediaType(
            "This looks like a password-protected workbook or an old .xls file, which cannot be read. "
            "Save it as .xlsx without a password, or as CSV, and upload it again.",
            code="ENCRYPTED_OR_LEGACY_WORKBOOK",
        )
    for magic, description in _OTHER_BINARY_MAGIC.items():
        if data.startswith(magic):
            raise UnsupportedMediaType(
                f"This file is {description}, not a spreadsheet. Upload a CSV or XLSX file.",
                code="UNSUPPORTED_FILE_TYPE",
            )
    if (filename or "").strip().lower().endswith((".xlsx", ".xlsm")):
        raise _unreadable("The file is named .xlsx but is not an Excel workbook.")
    return "csv"


# ---------------------------------------------------------------------------- CSV


def _decode_text(data: bytes) -> DecodedText:
    """Decode UTF-8 (BOM optional), UTF-16 with a BOM, or else Windows-1252, line by line if mixed."""
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            decoded = DecodedText(data.decode("utf-16"))  # the BOM picks the byte order and is dropped
        else:
            body = data.removeprefix(b"\xef\xbb\xbf")
            try:
                decoded = DecodedText(body.decode("utf-8"))
            except UnicodeDecodeError:
                decoded = decode_mixed(body)
    except UnicodeDecodeError as exc:
        raise _unreadable("The file's text encoding could not be read.") from exc
    text = decoded.text
    if "\x00" in text or _looks_binary(text):
        raise _unreadable("The file contains binary data and is not a readable CSV.")
    body = text.lstrip("\ufeff")
    if not body or body.isspace():  # not `.strip()`: that copies the whole text (60 MB for a 60 MB file)
        raise BadRequest(_EMPTY_MESSAGE, code="EMPTY_FILE")
    return decoded


def decode_mixed(body: bytes) -> DecodedText:
    """Bytes that are not UTF-8 throughout: Windows-1252, or UTF-8 with some Windows-1252 lines.

    A file is taken as mixed when its lines of UTF-8 accents are at least as many as its
    lines that are not UTF-8 (an editor that saved a few lines in the wrong encoding):
    then each line is read in the encoding it is valid in. Otherwise it is a Windows-1252
    file, read as such with no warning (a usual Excel "CSV" export). Splitting on line
    breaks is safe: neither encoding uses the bytes CR and LF inside a character.
    """
    lines = body.splitlines(keepends=True)
    texts: list[str | None] = []
    for line in lines:
        try:
            texts.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(None)
    fallback = frozenset(index for index, text in enumerate(texts) if text is None)
    evidence = sum(1 for text in texts if text is not None and _utf8_accents(text))
    if evidence < max(1, len(fallback)):
        return DecodedText(body.decode("cp1252"))
    return DecodedText(
        "".join(line.decode("cp1252") if text is None else text for line, text in zip(lines, texts)), fallback
    )


def _utf8_accents(text: str) -> bool:
    """Whether the text has non-ASCII characters, all of them accents or typography."""
    others = [char for char in text if not char.isascii()]
    return bool(others) and all(char in _UTF8_EVIDENCE for char in others)


def _unreadable(problem: str) -> BadRequest:
    return BadRequest(f"{problem} {_SAVE_AS_HINT}", code="UNREADABLE_FILE")


def _looks_binary(text: str) -> bool:
    sample = text[:_DELIMITER_SCAN_CHARS]
    return len(_CONTROL_CHARS.findall(sample)) > max(8, len(sample) // 20)


def detect_delimiter(text: str) -> str:
    """The delimiter of the header line: the most frequent of `,` `;` tab outside quotes."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    in_quotes = False
    for char in text.lstrip("\ufeff\r\n")[:_DELIMITER_SCAN_CHARS]:
        if char == '"':
            in_quotes = not in_quotes
        elif in_quotes:
            continue
        elif char in "\r\n":
            break
        elif char in counts:
            counts[char] += 1
    best = max(_DELIMITERS, key=lambda d: counts[d])  # ties go to the earlier one
    if counts[best]:
        return best
    return next((c for c in _NO_DELIMITER_CANDIDATES if c not in text), ",")


_LINE_END = re.compile(r"\r\n|\r|\n")


def _text_lines(text: str) -> Iterator[str]:
    """The lines of `text` with their ends, split as `io.StringIO(text, newline="")` splits them.

    Without the copy: StringIO holds 4 bytes a character, 240 MB for a 60 MB CSV.
    """
    start = 0
    for match in _LINE_END.finditer(text):
        yield text[start:match.end()]
        start = match.end()
    if start < len(text):
        yield text[start:]


def _csv_records(
    decoded: DecodedText, delimiter: str, fallback_rows: list[int]
) -> Iterator[tuple[int, list[str]]]:
    """Yield (row number, cells) for every record, blank lines included.

    The number of each record with a line read as Windows-1252 is appended to `fallback_rows`.
    """
    lines_read = 0

    def lines() -> Iterator[str]:
        nonlocal lines_read
        for line in _text_lines(decoded.text):
            lines_read += 1
            yield line

    reader = csv.reader(lines(), delimiter=delimiter, quotechar='"', strict=False)
    row_number = 0
    while True:
        first_line = lines_read
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise BadRequest(
                    f"Row {row_number + 1} has a cell that is far too long. "
                    "Shorten it, or check for an unclosed quote.",
                    code="CELL_TOO_LONG",
                    details={"row": row_number + 1},
                ) from exc
            raise _unreadable(f"The CSV could not be read ({exc}).") from exc
        row_number += 1
        if decoded.fallback_lines and not decoded.fallback_lines.isdisjoint(range(first_line, lines_read)):
            fallback_rows.append(row_number)
        yield row_number, cells


# ---------------------------------------------------------------------------- XLSX

# Excel's own sheet limits: a row or a column past them was not written by a spreadsheet.
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384  # column XFD
_ROW_TAG = f"{{{SHEET_MAIN_NS}}}row"
_CELL_TAG = f"{{{SHEET_MAIN_NS}}}c"
_RESAVE_HINT = "Open it in Excel, save it as .xlsx again (or as CSV) and upload it again."


@contextlib.contextmanager
def _first_sheet(data: bytes, max_columns: int) -> Iterator[Iterator[tuple[int, list[str]]]]:
    """Open the workbook and give the (row number, cells) of its first sheet; closes it after.

    Cells right of column `max_columns` are never kept.
    """
    _check_zip(data)
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it skips
                workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types (KeyError, ValueError, XML errors) on bad files
            raise _unreadable("The file could not be read as an Excel workbook.") from _without_frames(exc)
        try:
            if not workbook.worksheets:
                yield iter(())
                return
            with workbook.worksheets[0]._get_source() as source:  # the sheet's XML, inflated as it is read
                yield _sheet_records(_cell_parser(workbook.worksheets[0], source), max_columns)
        finally:
            workbook.close()
    finally:
        _collect_xml_parsers()


def _cell_parser(sheet: ReadOnlyWorksheet, source: IO[bytes]) -> WorkSheetParser:
    """openpyxl's own cell reader for the sheet: shared strings, dates, cached formula values."""
    book = sheet.parent
    return WorkSheetParser(source, sheet._shared_strings, data_only=True, epoch=book.epoch,
                           date_formats=book._date_formats, timedelta_formats=book._timedelta_formats)


def _sheet_records(parser: WorkSheetParser, max_columns: int) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) of every row in the sheet's XML, trailing empty cells dropped."""
    row_number, header_seen = 0, False
    try:
        for row_number, values, width in _sheet_rows(parser, max_columns):
            last = max((column for column, value in values.items() if value is not None), default=0)
            cells = [_cell_text(values.get(column)) for column in range(1, last + 1)]
            if not header_seen and any(map(_clean, cells)):
                # The header's empty cells count (a formatted header cell is in the file): the
                # cells of a data row under them are not past the header.
                header_seen = True
                cells += [""] * (width - len(cells))
            yield row_number, cells
    except AppError:
        raise
    except Exception as exc:  # a malformed sheet fails while it is being streamed
        raise _unreadable(f"The first sheet could not be read after row {row_number}.") from _without_frames(exc)


def _sheet_rows(parser: WorkSheetParser, max_columns: int) -> Iterator[tuple[int, dict[int, object], int]]:
    """(row number, {column: value}, cells in the file) of each row, columns up to `max_columns`.

    Only the rows the XML holds, numbered by their `r`: openpyxl's row reader makes up
    every missing row, so one row claiming to be row 9,999,999,999 took minutes. Work
    follows the bytes: each element is dropped once read, and a row or column past
    Excel's limits is refused when met. As openpyxl does, a row numbered at or before
    the previous one is skipped.
    """
    previous, row, values, width = 0, None, {}, 0
    open_elements: list[Any] = []
    for event, element in iterparse(parser.source, events=("start", "end")):
        if event == "start":
            if element.tag == _ROW_TAG and row is None:
                row, values, width = element, {}, 0
                parser.row_counter, parser.col_counter = _row_number(element.get("r"), parser.row_counter), 0
            open_elements.append(element)
            continue
        open_elements.pop()
        if element is row:
            if parser.row_counter > previous:
                previous = parser.row_counter
                yield parser.row_counter, values, width
            row = None
        elif element.tag == _CELL_TAG and row is not None and open_elements[-1] is row:
            cell = _checked_column(parser.parse_cell(element), parser.row_counter)
            if 1 <= cell["column"] <= max_columns:
                values[cell["column"]] = cell["value"]
                width = max(width, cell["column"])
        elif len(open_elements) > 2:
            continue  # inside a cell (or deeper): its parent reads it
        if open_elements:
            open_elements[-1].remove(element)  # read: let it go (a row may hold a million cells)


def _row_number(declared: str | None, previous: int) -> int:
    """A row's number: its `r`, else the one after the previous; past Excel's last row is refused."""
    if declared is None:
        number = previous + 1
    else:
        try:
            number = int(declared)
        except ValueError:
            value = float(declared)  # "1e3" is read as openpyxl reads it; "x" is unreadable
            if not value.is_integer():
                raise
            number = int(value)
    if number > EXCEL_MAX_ROWS:
        shown = f"{number:,}" if number < 10**15 else "above a quadrillion"
        raise BadRequest(
            f"The first sheet has a row numbered {shown}, past Excel's last row ({EXCEL_MAX_ROWS:,}). "
            + _RESAVE_HINT,
            code="ROW_NUMBER_OUT_OF_RANGE",
            details={"maxRow": EXCEL_MAX_ROWS},
        )
    return number


def _checked_column(cell: dict[str, Any], row_number: int) -> dict[str, Any]:
    """The cell parsed by openpyxl; one right of Excel's last column (XFD) is refused."""
    if cell["column"] > EXCEL_MAX_COLUMNS:
        raise BadRequest(
            f"Row {row_number} of the first sheet has a cell in column {cell['column']:,}, past Excel's last "
            f"column (XFD, {EXCEL_MAX_COLUMNS:,}). " + _RESAVE_HINT,
            code="COLUMN_OUT_OF_RANGE",
            details={"row": row_number, "maxColumn": EXCEL_MAX_COLUMNS},
        )
    return cell


# CPython before 3.12.2 crashes at interpreter exit when it frees an XML parser that met
# a parse error (python/cpython#111784), and openpyxl leaves its parsers in reference
# cycles, so free them here, while the interpreter is whole.
_COLLECT_XML_PARSERS = sys.version_info < (3, 12, 2)


def _without_frames(exc: BaseException) -> BaseException:
    """`exc`, its traceback's frames cleared: they hold the parser in a cycle with `exc`."""
    traceback.clear_frames(exc.__traceback__)
    return exc


def _collect_xml_parsers() -> None:
    if _COLLECT_XML_PARSERS:
        gc.collect()


def _check_zip(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    # NotImplementedError: a damaged header that asks for a zip version zipfile lacks.
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, ValueError, EOFError) as exc:
        raise _unreadable("The file is a damaged or incomplete workbook.") from exc
    total = sum(member.file_size for member in members)
    bomb = any(
        member.file_size > RATIO_CHECK_FLOOR_BYTES
        and member.file_size > MAX_COMPRESSION_RATIO * max(member.compress_size, 1)
        for member in members
    )
    if len(members) > MAX_ZIP_MEMBERS or total > MAX_UNCOMPRESSED_BYTES or bomb:
        raise PayloadTooLarge(
            "The workbook is too large once uncompressed. "
            "Save the questions as CSV, or split them into smaller files.",
            code="WORKBOOK_TOO_LARGE",
            details={"maxUncompressedBytes": MAX_UNCOMPRESSED_BYTES},
        )


def _cell_text(value: object) -> str:
    """An XLSX cell value as the text a user sees."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


# ---------------------------------------------------------------------------- table


def normalise_header(name: str) -> str:
    """The key a header is matched by: case, spaces, `_` and `-` ignored."""
    return _HEADER_NOISE.sub("", name).casefold()


def _clean(value: str) -> str:
    return _CONTROL_CHARS.sub("", value).strip()


def _find_column(headers: list[str], accepted: Iterable[str]) -> int | None:
    keys = [normalise_header(h) for h in headers]
    for name in accepted:
        key = normalise_header(name)
        if key in keys:
            return keys.index(key)
    return None


def _unique_names(headers: list[str], positions: list[int]) -> list[str]:
    """Name blank headers `Column N` and suffix repeats ` (2)`, ` (3)`; given names keep priority."""
    given = {header for header in headers if header.strip()}
    names: list[str] = []
    for header, position in zip(headers, positions):
        if header.strip() and header not in names:
            names.append(header)
            continue
        base = header if header.strip() else f"Column {position + 1}"
        name, suffix = base, 1
        while name in names or (name != header and name in given):
            suffix += 1
            name = f"{base} ({suffix})"
        names.append(name)
    return names


def _build_table(
    file_type: Literal["csv", "xlsx"],
    records: Iterator[tuple[int, list[str]]],
    max_rows: int,
    max_columns: int,
    max_cell_chars: int,
) -> ParsedTable:
    kept: list[tuple[int, list[str]]] = []
    layout = _scan_table(file_type, records, max_rows, max_columns, max_cell_chars, keep=kept.append)
    return ParsedTable(
        file_type=file_type,
        columns=list(layout.columns),
        question_column=layout.question_column,
        chat_column=layout.chat_column,
        url_column=layout.url_column,
        rows=[_layout_row(layout, row_number, row) for row_number, row in kept],
        warnings=layout.warnings,
    )


def _scan_table(
    file_type: Literal["csv", "xlsx"],
    records: Iterator[tuple[int, list[str]]],
    max_rows: int,
    max_columns: int,
    max_cell_chars: int,
    keep: Callable[[tuple[int, list[str]]], None] | None = None,
) -> TableLayout:
    """Check every record and find the columns; each row with a question goes to `keep` (if given)."""
    header_row, cells = _read_header(records)
    headers = _trim(cells)
    _check_width(len(headers), max_columns)
    _check_cell_lengths(header_row, headers, headers, max_cell_chars)
    question_index = _find_column(headers, QUESTION_HEADERS)
    if question_index is None:
        found = [header[:100] for header in headers if header]
        shown = ", ".join(found[:20]) + (", ..." if len(found) > 20 else "")
        raise BadRequest(
            f"No question column found. Name one column {', '.join(QUESTION_HEADERS)} "
            f"(case, spaces, '_' and '-' do not matter). Columns found: {shown or '(none)'}.",
            code="MISSING_QUESTION_COLUMN",
            details={"accepted": list(QUESTION_HEADERS), "found": found},
        )

    kept = 0
    skipped: list[int] = []
    used: set[int] = set()  # positions with a value in some kept row
    for row_number, raw in records:
        row = _trim([_clean(cell) for cell in raw])
        if not row:
            continue
        if len(row) > len(cells):  # a cell under a blank header cell is fine, past the header is not
            raise BadRequest(
                f"Row {row_number} has {len(row)} cells but the header has {len(headers)} columns. "
                "Check that the file uses one delimiter (, ; or tab) and that cells containing it are quoted.",
                code="ROW_HAS_EXTRA_CELLS",
                details={"row": row_number, "columns": len(headers), "cells": len(row)},
            )
        _check_cell_lengths(row_number, row, headers, max_cell_chars)
        if question_index >= len(row) or not row[question_index]:
            skipped.append(row_number)
            continue
        kept += 1
        if keep is not None:
            keep((row_number, row))
        used.update(position for position, value in enumerate(row) if value)
        if kept > max_rows:
            raise BadRequest(
                f"The file has more than {max_rows} questions. Split it into files of at most {max_rows} rows.",
                code="TOO_MANY_ROWS",
                details={"maxRows": max_rows},
            )
    if not kept:
        raise BadRequest(
            "The file has no rows with a question. Add questions under the header row.", code="NO_DATA_ROWS"
        )

    # A column with neither a header nor a value (a spacer, or padding after the table) is
    # dropped; any other blank header becomes `Column N`, N being its position in the file.
    positions = [p for p in range(len(cells)) if (p < len(headers) and headers[p]) or p in used]
    _check_width(len(positions), max_columns)
    given = [headers[p] if p < len(headers) else "" for p in positions]
    return TableLayout(
        file_type=file_type,
        header_row=header_row,
        header_width=len(cells),
        question_index=question_index,
        chat_index=_find_column(headers, CHAT_HEADERS),
        url_index=_find_column(headers, URL_HEADERS),
        positions=tuple(positions),
        columns=tuple(_unique_names(given, positions)),
        row_count=kept,
        warnings=_skipped_warnings(skipped),
    )


def _layout_row(layout: TableLayout, row_number: int, row: list[str]) -> ParsedRow:
    """A kept record (cleaned, trimmed) as a row of the table."""
    row = row + [""] * (layout.header_width - len(row))
    return ParsedRow(
        row_number=row_number,
        question=row[layout.question_index],
        chat_label=_optional(row, layout.chat_index),
        referring_url=_optional(row, layout.url_index),
        original={name: row[p] for p, name in zip(layout.positions, layout.columns)},
    )


def _read_header(records: Iterator[tuple[int, list[str]]]) -> tuple[int, list[str]]:
    """The first record with a value: its row number and its cleaned cells."""
    for row_number, raw in records:
        # Headers come back exactly as written (a trailing space included): only control
        # characters go. Columns are matched by `normalise_header`, which ignores spaces.
        cells = [_CONTROL_CHARS.sub("", cell) for cell in raw]
        if any(cell.strip() for cell in cells):
            cells[0] = cells[0].lstrip("\ufeff")
            return row_number, cells
    raise BadRequest(_EMPTY_MESSAGE, code="EMPTY_FILE")


def _optional(row: list[str], index: int | None) -> str | None:
    return (row[index] or None) if index is not None else None


def _skipped_warnings(row_numbers: list[int]) -> list[dict[str, Any]]:
    """One BLANK_QUESTION warning a skipped row, up to MAX_ROW_WARNINGS, then one for the rest."""
    shown: list[dict[str, Any]] = [
        {"code": "BLANK_QUESTION", "rowNumber": n, "message": f"Row {n}: the question is blank; the row was skipped."}
        for n in row_numbers[:MAX_ROW_WARNINGS]
    ]
    if len(row_numbers) > MAX_ROW_WARNINGS:
        more = len(row_numbers) - MAX_ROW_WARNINGS
        shown.append({"code": "MORE_BLANK_QUESTIONS", "rowNumber": None, "count": more,
                      "message": f"{more} more rows with a blank question were skipped."})
    return shown


def _encoding_warnings(row_numbers: list[int]) -> list[dict[str, Any]]:
    """The MIXED_ENCODING warning naming the rows read as Windows-1252, if there are any."""
    if not row_numbers:
        return []
    listed = ", ".join(map(str, row_numbers[:MAX_LISTED_ROWS]))
    if len(row_numbers) > MAX_LISTED_ROWS:
        listed += f" and {len(row_numbers) - MAX_LISTED_ROWS} more"
    if len(row_numbers) == 1:
        message = f"Row {listed} was not valid UTF-8 and was read as Windows-1252; check its accents."
    else:
        message = f"Rows {listed} were not valid UTF-8 and were read as Windows-1252; check their accents."
    return [{"code": "MIXED_ENCODING", "rowNumber": None, "rowNumbers": row_numbers[:MAX_ROW_WARNINGS],
             "message": message}]


def _trim(cells: list[str]) -> list[str]:
    """Drop trailing empty cells."""
    end = len(cells)
    while end and not cells[end - 1]:
        end -= 1
    return cells[:end]


def _check_width(columns: int, max_columns: int) -> None:
    if columns > max_columns:
        raise BadRequest(
            f"The file has {columns} columns; the limit is {max_columns}. Remove the columns you do not need.",
            code="TOO_MANY_COLUMNS",
            details={"maxColumns": max_columns, "columns": columns},
        )


def _check_cell_lengths(row_number: int, cells: list[str], headers: list[str], max_cell_chars: int) -> None:
    for position, value in enumerate(cells):
        if len(value) > max_cell_chars:
            column = (headers[position] if position < len(headers) else "") or f"Column {position + 1}"
            raise BadRequest(
                f"Row {row_number}, column {column[:100]!r} has {len(value)} characters; the limit is "
                f"{max_cell_chars}. Shorten it.",
                code="CELL_TOO_LONG",
                details={"row": row_number, "column": column[:100], "maxChars": max_cell_chars},
            )


# ---------------------------------------------------------------------------- chunked reading


@dataclass(frozen=True)
class TableLayout:
    """What a full read of a file found, without its rows: how to read its rows again.

    A file too big to ingest in one function is checked once (`scan_upload`, with every
    error `parse_upload` would raise) and then read again by chunks (`iter_upload_rows`):
    the same bytes and layout give the same rows in the same order every time, so a
    chunked ingestion resumes at a row index.
    """

    file_type: Literal["csv", "xlsx"]
    header_row: int  # the header's row number
    header_width: int  # cells in the header record (blank ones included)
    question_index: int
    chat_index: int | None
    url_index: int | None
    positions: tuple[int, ...]  # the file positions of the columns kept...
    columns: tuple[str, ...]  # ...and their names, made unique
    row_count: int  # rows with a question
    warnings: list[dict[str, Any]] = field(default_factory=list)
    delimiter: str | None = None  # as ParsedTable.delimiter

    @property
    def question_column(self) -> str:
        return self._name_at(self.question_index)  # type: ignore[return-value]

    @property
    def chat_column(self) -> str | None:
        return self._name_at(self.chat_index)

    @property
    def url_column(self) -> str | None:
        return self._name_at(self.url_index)

    def _name_at(self, index: int | None) -> str | None:
        return None if index is None else self.columns[self.positions.index(index)]

    def to_doc(self) -> dict[str, Any]:
        """The layout as a document to store (warnings are stored with the batch)."""
        doc = asdict(self)
        doc.pop("warnings")
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TableLayout:
        return cls(**{**doc, "positions": tuple(doc["positions"]), "columns": tuple(doc["columns"])})

    def shell(self) -> ParsedTable:
        """A table with this layout's columns and no rows (rows are added by chunks)."""
        return ParsedTable(file_type=self.file_type, columns=list(self.columns), question_column=self.question_column,
                           chat_column=self.chat_column, url_column=self.url_column, rows=[],
                           warnings=self.warnings, delimiter=self.delimiter)


def scan_upload(
    data: bytes, filename: str | None, *, max_rows: int, max_columns: int = 200, max_cell_chars: int = 20_000
) -> TableLayout:
    """Check an upload as `parse_upload` does, keeping no row; its layout. Raises what it raises."""
    with _records_of(data, filename, max_columns) as (file_type, records, delimiter, fallback_rows):
        layout = _scan_table(file_type, records, max_rows, max_columns, max_cell_chars)
    if file_type == "xlsx":
        return layout
    return replace(layout, delimiter=delimiter if delimiter in _DELIMITERS else ",",
                   warnings=_encoding_warnings(fallback_rows) + layout.warnings)


@contextlib.contextmanager
def iter_upload_rows(data: bytes, layout: TableLayout, *, max_columns: int = 200) -> Iterator[Iterator[ParsedRow]]:
    """The rows with a question of a file that `scan_upload` accepted, in file order (a stream)."""
    filename = "upload.xlsx" if layout.file_type == "xlsx" else "upload.csv"
    with _records_of(data, filename, max_columns) as (_, records, _delimiter, _fallback):
        yield _layout_rows(records, layout)


def _layout_rows(records: Iterator[tuple[int, list[str]]], layout: TableLayout) -> Iterator[ParsedRow]:
    for row_number, raw in records:
        if row_number <= layout.header_row:
            continue
        row = _trim([_clean(cell) for cell in raw])
        if row and layout.question_index < len(row) and row[layout.question_index]:
            yield _layout_row(layout, row_number, row)


@contextlib.contextmanager
def _records_of(
    data: bytes, filename: str | None, max_columns: int
) -> Iterator[tuple[Literal["csv", "xlsx"], Iterator[tuple[int, list[str]]], str | None, list[int]]]:
    """The file's type and records (and for a CSV its delimiter and the rows read as Windows-1252)."""
    file_type = detect_file_type(data, filename)
    if file_type == "xlsx":
        with _first_sheet(data, max_columns + 1) as records:
            yield "xlsx", records, None, []
        return
    decoded = _decode_text(data)
    delimiter = detect_delimiter(decoded.text)
    fallback_rows: list[int] = []
    yield "csv", _csv_records(decoded, delimiter, fallback_rows), delimiter, fallback_rows
