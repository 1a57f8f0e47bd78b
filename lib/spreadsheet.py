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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import openpyxl
from openpyxl.cell.read_only import EMPTY_CELL

from lib.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

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
    warnings: list[str]


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
    records = _csv_records(_decode_text(data))
    return _build_table("csv", records, max_rows, max_columns, max_cell_chars)


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


def _decode_text(data: bytes) -> str:
    """Decode UTF-8 (BOM optional), UTF-16 with a BOM, or else Windows-1252."""
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = data.decode("utf-16")  # the BOM picks the byte order and is dropped
        else:
            body = data.removeprefix(b"\xef\xbb\xbf")
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = body.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise _unreadable("The file's text encoding could not be read.") from exc
    if "\x00" in text or _looks_binary(text):
        raise _unreadable("The file contains binary data and is not a readable CSV.")
    if not text.lstrip("\ufeff").strip():
        raise BadRequest(_EMPTY_MESSAGE, code="EMPTY_FILE")
    return text


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


def _csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (row number, cells) for every record, blank lines included."""
    delimiter = detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=False)
    row_number = 0
    while True:
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
        yield row_number, cells


# ---------------------------------------------------------------------------- XLSX


@contextlib.contextmanager
def _first_sheet(data: bytes, max_columns: int) -> Iterator[Iterator[tuple[int, list[str]]]]:
    """Open the workbook and give the (row number, cells) of its first sheet; closes it after.

    Cells right of column `max_columns` are never read.
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
            yield _sheet_records(workbook.worksheets[0], max_columns) if workbook.worksheets else iter(())
        finally:
            workbook.close()
    finally:
        _collect_xml_parsers()


def _sheet_records(sheet: ReadOnlyWorksheet, max_columns: int) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) of every row, blank ones included, as the CSV reader gives them."""
    sheet.reset_dimensions()  # else a wrong <dimension> pads every row to its width
    # At most `max_columns` cells a row: openpyxl pads a row out to its last cell, so rows
    # that each hold one empty cell in column XFD would otherwise cost 16,384 cells apiece.
    rows = sheet.iter_rows(values_only=True, max_col=max_columns)
    row_number, header_seen = 0, False
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # a malformed sheet fails while it is being streamed
            raise _unreadable(f"The first sheet could not be read after row {row_number}.") from _without_frames(exc)
        row_number += 1
        # Trailing empty cells dropped; a blank row (openpyxl makes one up for every row
        # missing from the XML too) is told at C speed.
        end = 0 if values.count(None) == len(values) else len(values)
        while end and values[end - 1] is None:
            end -= 1
        cells = [_cell_text(value) for value in values[:end]]
        if not header_seen and any(map(_clean, cells)):
            # The header's empty cells count (a formatted header cell is in the file): the
            # cells of a data row under them are not past the header.
            header_seen = True
            cells += [""] * (_width_in_file(sheet, row_number, max_columns) - len(cells))
        yield row_number, cells


def _width_in_file(sheet: ReadOnlyWorksheet, row_number: int, max_columns: int) -> int:
    """The cells row `row_number` has in the file, empty ones included, up to `max_columns`."""
    try:
        for cells in sheet.iter_rows(min_row=row_number, max_row=row_number, max_col=max_columns):
            return max((i + 1 for i, cell in enumerate(cells) if cell is not EMPTY_CELL), default=0)
    except Exception as exc:  # as in _sheet_records
        raise _unreadable(f"The first sheet could not be read at row {row_number}.") from _without_frames(exc)
    return 0


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
    given = {header for header in headers if header}
    names: list[str] = []
    for header, position in zip(headers, positions):
        if header and header not in names:
            names.append(header)
            continue
        base = header or f"Column {position + 1}"
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

    kept: list[tuple[int, list[str]]] = []
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
        kept.append((row_number, row))
        used.update(position for position, value in enumerate(row) if value)
        if len(kept) > max_rows:
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
    names = dict(zip(positions, _unique_names(given, positions)))
    chat_index = _find_column(headers, CHAT_HEADERS)
    url_index = _find_column(headers, URL_HEADERS)

    rows = []
    for row_number, row in kept:
        row = row + [""] * (len(cells) - len(row))
        rows.append(
            ParsedRow(
                row_number=row_number,
                question=row[question_index],
                chat_label=_optional(row, chat_index),
                referring_url=_optional(row, url_index),
                original={name: row[p] for p, name in names.items()},
            )
        )
    return ParsedTable(
        file_type=file_type,
        columns=list(names.values()),
        question_column=names[question_index],
        chat_column=names[chat_index] if chat_index is not None else None,
        url_column=names[url_index] if url_index is not None else None,
        rows=rows,
        warnings=_skipped_warnings(skipped),
    )


def _read_header(records: Iterator[tuple[int, list[str]]]) -> tuple[int, list[str]]:
    """The first record with a value: its row number and its cleaned cells."""
    for row_number, raw in records:
        cells = [_clean(cell) for cell in raw]
        if any(cells):
            cells[0] = cells[0].lstrip("\ufeff").strip()
            return row_number, cells
    raise BadRequest(_EMPTY_MESSAGE, code="EMPTY_FILE")


def _optional(row: list[str], index: int | None) -> str | None:
    return (row[index] or None) if index is not None else None


def _skipped_warnings(row_numbers: list[int]) -> list[str]:
    shown = [f"Row {n}: the question is blank; the row was skipped." for n in row_numbers[:MAX_ROW_WARNINGS]]
    if len(row_numbers) > MAX_ROW_WARNINGS:
        shown.append(f"{len(row_numbers) - MAX_ROW_WARNINGS} more rows with a blank question were skipped.")
    return shown


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
