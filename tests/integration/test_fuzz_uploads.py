"""POST /api/batch/create under property-based fuzzing (Hypothesis).

Every upload, however malformed, ends in 202 or in a 4xx whose body is the error
envelope with an UPPER_SNAKE code; never a 5xx. A refused upload leaves no batch and no
item behind, and an accepted one is whole: queued, with one item per question row.

The route runs in-process (werkzeug's test client over `lib.routes.create_batch`) on a
real SecantusDB, publishing to a QStash dev server whose deliveries are paused, so no
accepted batch ever runs. Example counts: `tests/support/hypothesis_profiles.py`
(`HYPOTHESIS_PROFILE=campaign` for a long run).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import openpyxl
import pytest
import requests
from bson import ObjectId
from hypothesis import assume, example, given
from hypothesis import strategies as st
from openpyxl.utils import get_column_letter
from werkzeug.test import Client, TestResponse

from devstack.qstash_server import QStashDevServer
from lib.chat.screening import screen
from lib.spreadsheet import QUESTION_HEADERS, normalise_header, parse_upload
from tests.integration.conftest import bearer
from tests.support.fuzz_checks import CODE, assert_answered_with_a_code, code_of
from tests.support.hypothesis_profiles import fuzz_settings

ROOT = Path(__file__).resolve().parents[2]
PATH = "/api/batch/create"
MAX_ROWS = 100  # MAX_BATCH_ROWS for these tests
MAX_BODY = 4_718_592
MAX_COLUMNS = 200
MAX_CELL_CHARS = 20_000
CSV_FIELD_LIMIT = 131_072  # the csv module's default field_size_limit
FORM = {"batchName": "fuzz", "lang": "en", "aiProvider": "offline", "searchProvider": "offline"}


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def paused_qstash() -> Iterator[QStashDevServer]:
    with QStashDevServer(port=0, faults={"paused": True}) as server:
        yield server


@pytest.fixture
def env(env: dict[str, str], paused_qstash: QStashDevServer) -> dict[str, str]:
    # Limits high enough for hundreds of uploads a minute from one user.
    return {**env, "QSTASH_URL": paused_qstash.url, "MAX_BATCH_ROWS": str(MAX_ROWS),
            "CREATE_RATE_PER_MINUTE": "10000", "MAX_ACTIVE_BATCHES_PER_USER": "1000"}


@dataclass(repr=False)
class Uploads:
    """Sends uploads as the partner and checks the invariant on every answer."""

    client: Client
    headers: dict[str, str]
    services: Any
    user: Any

    @property
    def store(self) -> Any:
        return self.services.store

    def __repr__(self) -> str:
        return "uploads"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how Hypothesis prints a failing example
        printer.text("uploads")

    def counts(self) -> tuple[int, int]:
        return self.store.batches.count_documents({}), self.store.batch_items.count_documents({})

    def file(self, content: bytes, filename: str = "questions.csv", **fields: str) -> TestResponse:
        form: dict[str, Any] = {**FORM, **fields, "file": (io.BytesIO(content), filename)}
        return self.checked(lambda: self.client.post(PATH, data=form, headers=self.headers))

    def raw(self, body: bytes, content_type: str | None) -> TestResponse:
        headers = dict(self.headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.checked(lambda: self.client.post(PATH, data=body, headers=headers))

    def checked(self, send) -> TestResponse:
        before = self.counts()
        response = send()
        assert_answered_with_a_code(response, 202)
        batches, items = self.counts()
        if response.status_code == 202:
            body = response.get_json()
            batch = self.store.batches.find_one({"_id": ObjectId(body["batchId"])})
            assert batch["status"] == "queued" and batch["totalItems"] == body["totalItems"] >= 1
            assert (batches, items) == (before[0] + 1, before[1] + body["totalItems"])
            self.services.batches.cancel(self.user, body["batchId"])  # keep under the active-batches limit
        else:
            assert (batches, items) == before, "a refused upload left documents behind"
        assert self.store.batches.count_documents({"status": "creating"}) == 0
        return response


@pytest.fixture
def uploads(installed, users) -> Uploads:
    from lib.routes import create_batch

    return Uploads(Client(create_batch), bearer(users["partner"].id), installed, users["partner"])


# ------------------------------------------------------------------------------ text


CONTROL = "".join(map(chr, [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]))
TRICKY = ['"', ",", ";", "\t", "\n", "\r", "\r\n", " ", "\u00a0", "\u2028", "\ufeff", "\u200f", "é", "ß", "€",
          "😀", "=cmd|' /C calc'!A0", "+1", "@SUM(A1)", "jo@example.ca", "613-555-0199", "046 454 286", "K1A 0B1",
          "4111 1111 1111 1111", "$ne", "{\"$gt\": \"\"}", "a.b", "\\", "'", "\x00", "\x1b[31m", "\x7f", "\x85"]

# Text a person might type: any unicode but controls and surrogates, with the characters
# that matter to CSV (delimiters, quotes, line breaks) over-represented.
clean_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
    | st.sampled_from([",", ";", "\t", '"', "\n", "\r", " ", "é", "€", "'", "="]),
    max_size=40,
)
# Anything at all, control characters and NUL included.
wild_text = st.lists(
    st.text(max_size=12) | st.sampled_from(TRICKY) | st.text(st.sampled_from(CONTROL), max_size=4),
    max_size=6,
).map("".join)


@st.composite
def question_headers(draw) -> str:
    """A name the service reads as a question column: any case, spaces, `_` or `-`."""
    name = draw(st.sampled_from(QUESTION_HEADERS))
    out = []
    for char in name:
        out.append(char.lower() if draw(st.booleans()) else char)
        out.append(draw(st.sampled_from(["", "", "", " ", "_", "-", "  "])))
    return draw(st.sampled_from(["", " "])) + "".join(out).strip("_-") + draw(st.sampled_from(["", " "]))


# Other column names, never a question alias, never a delimiter: a header line's
# delimiter is guessed from it, and a name with `,` in a `;` file is ambiguous for anyone.
other_headers = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters=',;\t"\ufeff'),
    max_size=12,
).filter(lambda h: normalise_header(h) not in {normalise_header(q) for q in QUESTION_HEADERS})


def expected_question_index(headers: list[str]) -> int | None:
    keys = [normalise_header(h.strip()) for h in headers]
    for name in QUESTION_HEADERS:
        if normalise_header(name) in keys:
            return keys.index(normalise_header(name))
    return None


# ------------------------------------------------------------------------------ CSV


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]

    @property
    def question_index(self) -> int | None:
        return expected_question_index(self.headers)

    def expected(self) -> tuple[list[str], int]:
        """The questions the service must keep, in order, and its number of warnings."""
        index = self.question_index
        assert index is not None
        questions, warnings = [], 0
        for row in self.rows:
            if row[index].strip():
                questions.append(row[index].strip())
            elif any(cell.strip() for cell in row):
                warnings += 1
        return questions, min(warnings, 100) + (1 if warnings > 100 else 0)


@dataclass(frozen=True)
class Dialect:
    """How a file is written: delimiter, quoting (minimal or all), line ends, encoding."""

    delimiter: str
    quote_all: bool
    lineterminator: str
    encoding: str

    def representable(self, table: Table) -> Table:
        """The table as this encoding can carry it (characters it lacks become `?`)."""
        def fit(text: str) -> str:
            return text.encode(self.encoding, "replace").decode(self.encoding)
        return Table([fit(h) for h in table.headers], [[fit(c) for c in row] for row in table.rows])

    def encode(self, rows: list[list[str]]) -> bytes:
        # Not csv.writer: Python 3.12's leaves a "\r" (or "\n") that its line terminator lacks
        # unquoted, which makes a file no reader can split right.
        return "".join(
            self.delimiter.join(self._cell(cell) for cell in row) + self.lineterminator for row in rows
        ).encode(self.encoding)

    def _cell(self, cell: str) -> str:
        if self.quote_all or any(char in cell for char in (self.delimiter, '"', "\r", "\n")):
            return '"' + cell.replace('"', '""') + '"'
        return cell


SUPPORTED_ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "cp1252"]  # "utf-16" writes a BOM
OTHER_ENCODINGS = ["utf-16-le", "utf-16-be", "utf-32", "latin-1", "shift_jis", "utf-7"]


def dialects(encodings: list[str] = SUPPORTED_ENCODINGS) -> st.SearchStrategy[Dialect]:
    return st.builds(
        Dialect,
        delimiter=st.sampled_from([",", ";", "\t"]),
        quote_all=st.booleans(),
        lineterminator=st.sampled_from(["\r\n", "\n", "\r"]),
        encoding=st.sampled_from(encodings),
    )


@st.composite
def header_lists(draw, *, with_question: bool = True) -> list[str]:
    others = draw(st.lists(other_headers, max_size=6))
    if not with_question:
        return others or ["notes"]
    position = draw(st.integers(0, len(others)))
    return [*others[:position], draw(question_headers()), *others[position:]]


@st.composite
def tables(draw, *, with_question: bool = True, text=clean_text) -> Table:
    headers = draw(header_lists(with_question=with_question))
    rows = draw(st.lists(st.lists(text | st.sampled_from(["", " "]), min_size=len(headers), max_size=len(headers)),
                         max_size=12))
    return Table(headers, rows)


def ambiguous(dialect: Dialect, content: bytes) -> bool:
    """A cp1252 file that is also valid UTF-8 is read as UTF-8 (by design), so its text differs."""
    if dialect.encoding != "cp1252":
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not content.isascii()


@fuzz_settings(40)
@given(table=tables(), dialect=dialects())
@example(  # CR line ends with a quoted cell holding CRLF, in UTF-16 with a BOM
    table=Table(["Question", "Note"], [["first\r\nline", "x"], ["  ", "skipped"], ["second", ""]]),
    dialect=Dialect(";", False, "\r", "utf-16"),
)
@example(  # a one-column file whose questions hold every delimiter, unquoted
    table=Table(["problem_details"], [["a, b; c\td"], [""]]),
    dialect=Dialect(",", False, "\n", "cp1252"),
)
@example(  # duplicate and blank headers, and a question alias that is not first in QUESTION_HEADERS
    table=Table(["", "QUESTION", "Note", "Note", "", "REDACTED-question"],
                [["a", "b", "c", "d", "e", "f"], ["", "", "", "", "", ""]]),
    dialect=Dialect("\t", True, "\r\n", "utf-8-sig"),
)
@example(  # a lone CR inside a quoted cell, in a file whose lines end with LF
    table=Table(["REDACTEDQUESTION", "", ""], [["", "", ""], ["0\r0", "", ""], ["0\r", "", "0"], ["", "", "\r0"]]),
    dialect=Dialect(",", False, "\n", "utf-8"),
)
def test_a_well_formed_csv_in_any_dialect_keeps_every_question_row(uploads, table, dialect):
    table = dialect.representable(table)
    content = dialect.encode([table.headers, *table.rows])
    questions, warnings = table.expected()
    assume(not ambiguous(dialect, content))

    response = uploads.file(content)

    if not questions:
        assert code_of(response) == "NO_DATA_ROWS"
        return
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["totalItems"] == len(questions)
    assert len(body["warnings"]) == warnings
    items = uploads.store.batch_items.find({"batchId": ObjectId(body["batchId"])}).sort("rowIndex", 1)
    # Each question as the rule-based checks keep it (masked where they refuse it).
    assert [item["question"] for item in items] == [screen(q, "en").text for q in questions]


@fuzz_settings(20)
@given(table=tables(with_question=False), dialect=dialects())
def test_a_csv_without_a_question_column_is_refused_with_the_columns_found(uploads, table, dialect):
    table = dialect.representable(table)
    assume(table.question_index is None)
    content = dialect.encode([table.headers, *table.rows])
    assume(not ambiguous(dialect, content) and any(h.strip() for h in table.headers))

    response = uploads.file(content)

    assert response.status_code == 400
    assert code_of(response) == "MISSING_QUESTION_COLUMN"


BOMS = [b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"]
GARBAGE = [b"\x00", b"\xff", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe9", b"\x81\x8d\x8f",
           b"\r", b"\n", b'"', b"\x1a", b"PK\x03\x04", b"%PDF", b"\xd0\xcf\x11\xe0"]


@st.composite
def mangled(draw, content: bytes) -> bytes:
    """`content` with bytes inserted, deleted, overwritten or cut, and maybe another BOM."""
    data = bytearray(content)
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "overwrite", "truncate"]))
        chunk = draw(st.sampled_from(GARBAGE) | st.binary(min_size=1, max_size=8))
        if action == "insert":
            data[position:position] = chunk
        elif action == "delete":
            del data[position:position + len(chunk)]
        elif action == "overwrite":
            data[position:position + len(chunk)] = chunk
        else:
            del data[position:]
    return draw(st.sampled_from(BOMS)) + bytes(data)


@fuzz_settings(60)
@given(data=st.data(), table=tables(text=wild_text), dialect=dialects(SUPPORTED_ENCODINGS * 2 + OTHER_ENCODINGS),
       filename=st.sampled_from(["q.csv", "Q.CSV", "q.txt", "q.xlsx", "q", "", "../../etc/passwd", "q\u202ecsv.exe"]))
@example(data=None, table=Table(["QUESTION"], [["a\x00b"]]), dialect=Dialect(",", False, "\n", "utf-8"),
         filename="q.csv")
@example(data=None, table=Table(["QUESTION"], [["\x1b" * 50]]), dialect=Dialect(",", False, "\n", "utf-8"),
         filename="q.csv")
def test_mangled_csv_bytes_get_202_or_a_coded_4xx(uploads, data, table, dialect, filename):
    try:
        content = dialect.encode([table.headers, *table.rows])
    except UnicodeEncodeError:
        content = Dialect(dialect.delimiter, dialect.quote_all, dialect.lineterminator, "utf-8").encode(
            [table.headers, *table.rows])
    if data is not None:
        content = data.draw(mangled(content))

    uploads.file(content, filename)  # the invariant is checked on every answer


@fuzz_settings(6)
@given(st.binary(min_size=1, max_size=2048), st.sampled_from(["q.csv", "q.xlsx"]))
def test_random_bytes_as_a_file_get_202_or_a_coded_4xx(uploads, content, filename):
    uploads.file(content, filename)


@pytest.fixture
def results(installed, users) -> Client:
    from lib.routes import batch_results

    return Client(batch_results)


export_text = clean_text | st.sampled_from([t for t in TRICKY if t != "\x00"])


@fuzz_settings(15)
@given(table=tables(text=export_text), dialect=dialects(), name=st.text(min_size=1, max_size=200).filter(str.strip))
@example(table=Table(["QUESTION", "=cmd", "note"], [['=HYPERLINK("http://x")', "\x01", "\ufffe\uffff"]]),
         dialect=Dialect(",", False, "\n", "utf-8"), name='evil"\r\nSet-Cookie: x=1')
def test_every_accepted_upload_downloads_in_every_format(uploads, results, table, dialect, name):
    table = dialect.representable(table)
    response = uploads.file(dialect.encode([table.headers, *table.rows]), batchName=name)
    if response.status_code != 202:
        return
    batch_id, total = response.get_json()["batchId"], response.get_json()["totalItems"]

    for fmt in ("json", "csv", "xlsx"):
        download = results.get("/api/batch/results", query_string={"batchId": batch_id, "format": fmt},
                               headers=uploads.headers)

        assert download.status_code == 200, download.get_data()[:300]
        if fmt == "json":
            assert len(download.get_json()["items"]) == total
        elif fmt == "csv":
            text = io.StringIO(download.get_data().decode("utf-8-sig"), newline="")
            # Results come back with the uploaded file's delimiter.
            assert len(list(csv.reader(text, delimiter=dialect.delimiter))) == total + 1
        else:
            sheet = openpyxl.load_workbook(io.BytesIO(download.get_data()), read_only=True).worksheets[0]
            assert sum(1 for _ in sheet.iter_rows()) == total + 1
        assert "\r" not in download.headers.get("Content-Disposition", "") and "Set-Cookie" not in download.headers


# ------------------------------------------------------------------------------ sizes


@fuzz_settings(10)
@given(length=st.sampled_from([MAX_CELL_CHARS, MAX_CELL_CHARS + 1, CSV_FIELD_LIMIT, CSV_FIELD_LIMIT + 1,
                               1_000_000]),
       where=st.sampled_from(["header", "question", "other"]), quoted=st.booleans(),
       char=st.sampled_from(["x", "é", "😀", " x"]))
@example(length=CSV_FIELD_LIMIT + 1, where="question", quoted=True, char="x")
def test_a_huge_cell_is_refused_as_too_long_and_one_at_the_limit_is_kept(uploads, length, where, quoted, char):
    cell = (char * length)[:length]
    header = ["QUESTION", cell if where == "header" else "note"]
    row = [cell if where == "question" else "a question?", cell if where == "other" else "n"]
    quote = (lambda c: '"' + c.replace('"', '""') + '"') if quoted else (lambda c: c)
    text = "\n".join(",".join(quote(c) for c in line) for line in (header, row)) + "\n"
    content = text.encode("utf-8")
    assume(len(content) < MAX_BODY - 4096)

    response = uploads.file(content)

    if len(cell.strip()) > MAX_CELL_CHARS:
        assert (response.status_code, code_of(response)) == (400, "CELL_TOO_LONG")
    else:
        assert response.status_code == 202


@fuzz_settings(6)
@given(extra=st.sampled_from([2, 50]))
def test_an_unclosed_quote_that_swallows_the_file_is_refused_not_a_500(uploads, extra):
    content = b'QUESTION,note\n"' + b"a question, " * (CSV_FIELD_LIMIT // 12 + extra) + b"\nnext,row\n"

    response = uploads.file(content)

    assert (response.status_code, code_of(response)) == (400, "CELL_TOO_LONG")


@fuzz_settings(8)
@given(width=st.sampled_from([MAX_COLUMNS - 1, MAX_COLUMNS, MAX_COLUMNS + 1, 1_000, 5_000, 16_384]),
       where=st.sampled_from(["header", "data"]), blank_headers=st.booleans())
def test_thousands_of_columns_are_refused_with_a_code(uploads, width, where, blank_headers):
    names = ["QUESTION"] + [("" if blank_headers and n % 2 else f"c{n}") for n in range(1, width)]
    if where == "header":
        lines = [",".join(names), ",".join(["q?"] + ["v"] * (width - 1))]
    else:
        lines = ["QUESTION,note", ",".join(["q?"] + ["v"] * (width - 1))]
    response = uploads.file(("\n".join(lines) + "\n").encode())

    if where == "data" and width > 2:
        assert code_of(response) == "ROW_HAS_EXTRA_CELLS"
    elif width > MAX_COLUMNS:
        assert code_of(response) == "TOO_MANY_COLUMNS"
    else:
        assert response.status_code == 202


@fuzz_settings(4)
@given(rows=st.sampled_from([MAX_ROWS, MAX_ROWS + 1, 5_000]), blank_every=st.sampled_from([0, 2]))
def test_more_question_rows_than_the_limit_are_refused(uploads, rows, blank_every):
    lines = ["QUESTION"] + [("" if blank_every and n % blank_every else f"q{n}?") for n in range(rows)]
    questions = sum(1 for line in lines[1:] if line)

    response = uploads.file(("\n".join(lines) + "\n").encode())

    if questions > MAX_ROWS:
        assert code_of(response) == "TOO_MANY_ROWS"
    else:
        assert response.get_json()["totalItems"] == questions


# ------------------------------------------------------------------------------ XLSX


def workbook_bytes(workbook: openpyxl.Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


xlsx_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=30)
xlsx_values = st.one_of(
    st.none(), xlsx_text, st.sampled_from(["", " ", "=SUM(1,2)", "=A1", "=1/0", "=NOW()", "#N/A", "TRUE"]),
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
    st.datetimes(min_value=dt.datetime(1900, 3, 1), max_value=dt.datetime(9999, 12, 31)),
    st.dates(min_value=dt.date(1900, 3, 1)), st.times(),
)


def formula(value: object) -> bool:
    return isinstance(value, str) and value.startswith("=") and len(value) > 1


@dataclass(frozen=True)
class Sheet:
    headers: list[str]
    rows: list[list[object]]
    merges: list[tuple[int, int, int, int]]  # (min_row, min_col, max_row, max_col), 1-based, data rows only


@st.composite
def sheets(draw, *, with_question: bool = True) -> Sheet:
    headers = draw(header_lists(with_question=with_question))
    width = len(headers)
    rows = draw(st.lists(st.lists(xlsx_values, min_size=width, max_size=width), max_size=10))
    merges = []
    if rows:
        for _ in range(draw(st.integers(0, 2))):
            top = draw(st.integers(2, len(rows) + 1))
            left = draw(st.integers(1, width))
            merges.append((top, left, draw(st.integers(top, len(rows) + 1)), draw(st.integers(left, width))))
    return Sheet(headers, rows, merges)


def build_workbook(first: Sheet | None, others: list[Sheet]) -> openpyxl.Workbook:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for number, sheet in enumerate(([first] if first else [None]) + others):
        target = workbook.create_sheet(f"Sheet{number + 1}")
        if sheet is None:
            continue  # an empty first sheet
        target.append(sheet.headers)
        for row in sheet.rows:
            target.append(row)
        for top, left, bottom, right in sheet.merges:
            if (top, left) != (bottom, right):
                target.merge_cells(start_row=top, start_column=left, end_row=bottom, end_column=right)
    return workbook


def blank(value: object) -> bool:
    """Whether a cell reads as blank: nothing, spaces, or a formula (no cached value to read)."""
    return value is None or formula(value) or (isinstance(value, str) and not value.strip())


def expected_xlsx_answer(workbook: openpyxl.Workbook, headers: list[str]) -> str | int:
    """The number of question rows of the first sheet, or the code of the expected error.

    The header is as wide as its last cell in the file, an empty one included (openpyxl
    writes a cell for "", none for None); a value right of it is "past the header".
    """
    question_index = expected_question_index(headers)
    header_width = max((i + 1 for i, h in enumerate(headers) if h is not None), default=0)
    count = 0
    for row in workbook.worksheets[0].iter_rows(min_row=2, values_only=True):
        if any(not blank(value) for value in row[header_width:]):
            return "ROW_HAS_EXTRA_CELLS"
        count += not blank(row[question_index])
    return count or "NO_DATA_ROWS"


@fuzz_settings(25)
@given(first=st.one_of(sheets(), sheets(), sheets(), st.none()), others=st.lists(sheets(), max_size=2),
       filename=st.sampled_from(["q.xlsx", "q.XLSX", "q.xlsm", "q.csv", "q"]))
def test_any_workbook_reads_its_first_sheet_only(uploads, first, others, filename):
    workbook = build_workbook(first, others)
    expected = expected_xlsx_answer(workbook, first.headers) if first else "EMPTY_FILE"

    response = uploads.file(workbook_bytes(workbook), filename)

    if isinstance(expected, str):
        assert code_of(response) == expected
    else:
        assert response.get_json()["totalItems"] == expected


@fuzz_settings(10)
@given(first=sheets(with_question=False))
@example(first=Sheet(["=0", "note"], [], []))  # a formula header has no value to read: only "note" counts
def test_a_workbook_without_a_question_column_is_refused(uploads, first):
    assume(any(not blank(header) for header in first.headers))  # else the sheet reads as empty
    response = uploads.file(workbook_bytes(build_workbook(first, [])), "q.xlsx")
    assert code_of(response) == "MISSING_QUESTION_COLUMN"


# A workbook assembled by hand, so that the sheet XML itself can be fuzzed.
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
    '<sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/></Relationships>'
)
_MAIN = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def handmade_workbook(sheet_data: str, shared: list[str] = (), *, head: str = "",
                      compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    sheet = (f'<?xml version="1.0" encoding="UTF-8"?><worksheet {_MAIN}>{head}'
             f"<sheetData>{sheet_data}</sheetData></worksheet>")
    strings = "".join(f"<si><t>{s}</t></si>" for s in shared)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        archive.writestr("xl/sharedStrings.xml", f'<sst {_MAIN} count="{len(shared)}">{strings}</sst>')
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    return buffer.getvalue()


def inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


HEADER_ROW = f'<row r="1">{inline("A1", "QUESTION")}{inline("B1", "note")}</row>'
FIRST_ROW = f'<row r="2">{inline("A2", "a question?")}</row>'

cell_refs = st.one_of(
    st.builds(lambda col, row: f"{get_column_letter(col)}{row}", st.integers(1, 16_384), st.integers(1, 1_048_576)),
    st.sampled_from(["A0", "XFE1", "ZZZZ1", "1", "A", "", "a1", "A-1", "$A$1", "A1048577", "A99999999999"]),
)
cell_types = st.sampled_from(["n", "s", "str", "inlineStr", "b", "e", "d", None, "zz"])
# Mostly well-formed XML (so that openpyxl reads on and converts the value), sometimes not.
cell_payloads = st.one_of(
    st.sampled_from(["0", "1", "-1", "1e308", "1e309", "NaN", "inf", "9" * 400, "0.5", "2958466", "-700000", "abc",
                     "", "2024-13-45T25:61:00", "1900-01-00", "99999-01-01", "#DIV/0!", "&amp;", "_x0000_", "_xD800_",
                     "TRUE", "2", "1.5e-300", "-0", "0x1F"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=10).map(xml_escape),
    st.sampled_from(["&#0;", "&#xD800;", "&#55296;", "&bogus;", "<", "]]>", "\u0000", "\x1b"]),
)


@st.composite
def fuzzed_cells(draw) -> str:
    ref, kind, payload = draw(cell_refs), draw(cell_types), draw(cell_payloads)
    attributes = (f' r="{ref}"' if draw(st.booleans()) else "") + (f' t="{kind}"' if kind else "")
    if draw(st.integers(0, 9)) == 0:
        attributes += draw(st.sampled_from([' s="99"', ' s="-1"', ' s="x"']))
    if kind == "inlineStr":
        return f"<c{attributes}><is><t>{payload}</t></is></c>"
    body = draw(st.sampled_from([f"<v>{payload}</v>", f"<f>SUM(A1)</f><v>{payload}</v>", "", f"<f>{payload}</f>"]))
    return f"<c{attributes}>{body}</c>"


@st.composite
def fuzzed_rows(draw) -> str:
    number = draw(st.one_of(st.integers(1, 1_048_576).map(str), st.sampled_from(["0", "-1", "x", "", "1048577"])))
    cells = "".join(draw(st.lists(fuzzed_cells(), max_size=4)))
    spans = draw(st.sampled_from(["", ' spans="1:3"', ' spans="x"', ' ht="0" customHeight="1"', ' hidden="1"']))
    return f'<row r="{number}"{spans}>{cells}</row>' if number else f"<row{spans}>{cells}</row>"


sheet_heads = st.sampled_from([
    "", '<dimension ref="A1:XFD1048576"/>', '<dimension ref="A1"/>', '<dimension ref="bogus"/>',
    '<sheetViews><sheetView workbookViewId="0"/></sheetViews>', '<sheetPr><outlinePr summaryBelow="0"/></sheetPr>',
    '<cols><col min="1" max="16384" width="9"/></cols>',
])


@fuzz_settings(40)
@given(rows=st.lists(fuzzed_rows(), max_size=6), shared=st.lists(st.sampled_from(["s0", "", "QUESTION", "&#1;"]),
       max_size=3), head=sheet_heads, tail=st.sampled_from(["", "<bogus/>", "&#xD800;", "<mergeCells count=\"1\">"
       '<mergeCell ref="A1:XFD1048576"/></mergeCells>']))
@example(  # rows of one empty cell in column XFD: cost 16,384 cells a row before the column cap
    rows=[f'<row r="{n}"><c r="XFD{n}"/></row>' for n in range(3, 2_003)], shared=[], head="", tail="")
@example(rows=[inline("A2", "&#55296;")], shared=[], head="", tail="")  # an XML parse error mid-sheet
@example(rows=['<row r="2"><c r="A2" t="s"><v>7</v></c></row>'], shared=["s0"], head="", tail="")
@example(rows=['<row r="1048576"><c r="A1048576" t="str"><v>last row</v></c></row>'], shared=[], head="", tail="")
def test_a_fuzzed_sheet_xml_gets_202_or_a_coded_4xx(uploads, rows, shared, head, tail):
    content = handmade_workbook(HEADER_ROW + FIRST_ROW + "".join(rows) + tail, shared, head=head)
    uploads.file(content, "q.xlsx")


def test_rows_of_one_empty_cell_in_column_xfd_are_read_in_linear_time():
    """Regression: openpyxl pads each row out to its last cell, and every padded cell used
    to be converted, so these 10,000 rows (49 KB zipped) took 38 s and 50,000 took 155 s."""
    content = handmade_workbook(HEADER_ROW + FIRST_ROW + "".join(
        f'<row r="{n}"><c r="XFD{n}"/></row>' for n in range(3, 10_003)))

    started = time.monotonic()
    table = parse_upload(content, "q.xlsx", max_rows=MAX_ROWS)

    assert time.monotonic() - started < 5
    assert [row.question for row in table.rows] == ["a question?"]


def test_a_sheet_that_fails_to_parse_does_not_crash_the_interpreter_at_exit(tmp_path):
    """Regression: on CPython < 3.12.2 an XML parser that met an error and was still in a
    reference cycle at exit crashed the interpreter (SIGSEGV, python/cpython#111784)."""
    workbook = openpyxl.Workbook()
    workbook.active.append(["QUESTION"])
    workbook.active.append(["a\ud800b"])  # written as &#55296;, which no XML parser accepts
    path = tmp_path / "broken.xlsx"
    path.write_bytes(workbook_bytes(workbook))
    script = (
        "import pathlib, sys\n"
        "from lib.errors import BadRequest\n"
        "from lib.spreadsheet import parse_upload\n"
        "try:\n"
        f"    parse_upload(pathlib.Path({str(path)!r}).read_bytes(), 'q.xlsx', max_rows=10)\n"
        "except BadRequest as error:\n"
        "    print(error.code)\n"
    )

    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert (done.returncode, done.stdout.strip()) == (0, "UNREADABLE_FILE"), done.stderr[-2000:]


# ------------------------------------------------------------------------------ zips


@cache
def valid_workbook() -> bytes:
    workbook = openpyxl.Workbook()
    workbook.active.append(["Question", "Date", "Total"])
    workbook.active.append(["How do I renew my passport?", dt.datetime(2024, 5, 17, 9, 30), "=SUM(1,2)"])
    workbook.create_sheet("Second").append(["Question"])
    return workbook_bytes(workbook)


@cache
def zip_bomb() -> bytes:
    """A workbook whose sheet inflates from ~30 KB to 30 MB (above the ratio floor)."""
    row = f'<row r="2">{inline("A2", "q")}</row>'
    return handmade_workbook(HEADER_ROW + row + "<!--" + " " * (30 * 1024 * 1024) + "-->")


def lying_sizes(content: bytes, member: str, size: int) -> bytes:
    """The zip with `member`'s uncompressed size rewritten, in both headers, to `size`."""
    data = bytearray(content)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        info = archive.getinfo(member)
    local = info.header_offset
    struct.pack_into("<I", data, local + 22, size)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + name_length] == member.encode():
            struct.pack_into("<I", data, central + 24, size)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


zip_members = st.dictionaries(
    st.sampled_from(["[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/worksheets/sheet1.xml", "a.txt",
                     "../evil", "/abs", "xl/_rels/workbook.xml.rels", "mimetype"]),
    st.binary(max_size=200) | st.sampled_from([_CONTENT_TYPES.encode(), _RELS.encode(), _WORKBOOK.encode(), b""]),
    max_size=5,
)


@fuzz_settings(25)
@given(kind=st.sampled_from(["truncated", "flipped", "members", "not-a-zip", "lying-size"]), data=st.data())
@example(kind="bomb", data=None)
@example(kind="not-a-zip", data=None)
@example(kind="lying-size", data=None)
@example(kind="flipped", data=None)  # regression: "version needed" 6.4 made zipfile raise NotImplementedError (500)
def test_a_broken_or_hostile_workbook_gets_a_coded_4xx(uploads, kind, data):
    workbook = valid_workbook()
    if kind == "bomb":
        content = zip_bomb()
    elif kind == "truncated":
        content = workbook[:data.draw(st.integers(4, len(workbook) - 1))]
    elif kind == "flipped":
        if data:
            position, mask = data.draw(st.integers(0, len(workbook) - 1)), data.draw(st.integers(1, 255))
        else:  # the first central directory entry's "version needed to extract"
            position, mask = workbook.find(b"PK\x01\x02") + 6, 0x14 ^ 64
        content = workbook[:position] + bytes([workbook[position] ^ mask]) + workbook[position + 1:]
    elif kind == "members":
        content = zip_of(data.draw(zip_members))
    elif kind == "not-a-zip":
        content = data.draw(st.binary(min_size=1, max_size=300)) if data else b"QUESTION\na question?\n"
    else:
        member = data.draw(st.sampled_from(["xl/worksheets/sheet1.xml", "[Content_Types].xml"])) if data else \
            "xl/worksheets/sheet1.xml"
        content = lying_sizes(workbook, member, data.draw(st.sampled_from([1, 10, 10**6, 2**32 - 1])) if data else 10)

    response = uploads.file(content, "q.xlsx")

    if kind == "bomb":
        assert (response.status_code, code_of(response)) == (413, "WORKBOOK_TOO_LARGE")
    elif kind in ("not-a-zip", "members", "lying-size") and response.status_code != 202:
        assert code_of(response) in ("UNREADABLE_FILE", "EMPTY_FILE", "WORKBOOK_TOO_LARGE", "UNSUPPORTED_FILE_TYPE",
                                     "ENCRYPTED_OR_LEGACY_WORKBOOK", "MISSING_QUESTION_COLUMN", "NO_DATA_ROWS")


# ------------------------------------------------------------------------------ multipart


VALID_CSV = b"QUESTION,note\nHow do I renew my passport?,n\n"
bchars = st.text(st.sampled_from("abcXYZ0189'()+_,-./:=? "), min_size=1, max_size=70).filter(lambda b: b[-1] != " ")


@dataclass(frozen=True)
class Part:
    headers: list[bytes]
    body: bytes


def field_part(name: bytes, value: bytes) -> Part:
    return Part([b'Content-Disposition: form-data; name="' + name + b'"'], value)


def file_part(content: bytes, filename: bytes = b"q.csv", name: bytes = b"file") -> Part:
    return Part([b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"',
                 b"Content-Type: text/csv"], content)


def good_parts() -> list[Part]:
    return [*(field_part(k.encode(), v.encode()) for k, v in FORM.items()), file_part(VALID_CSV)]


part_defects = st.sampled_from([
    "none", "no-disposition", "disposition-not-form-data", "no-name", "second-file", "non-utf8-field",
    "huge-field", "non-utf8-filename", "header-without-colon", "garbage-header", "lf-only", "many-parts",
    "empty-name", "quoted-boundary-in-body", "no-file", "file-without-filename", "huge-header", "unclosed",
    "preamble",  # RFC 2046 allows one; python-multipart does not (400), and no browser sends one
])


def encode_form(boundary: bytes, parts: list[Part], *, newline: bytes = b"\r\n", closed: bool = True,
                preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    out = [preamble]
    for part in parts:
        out.append(b"--" + boundary + newline + newline.join(part.headers) + newline + newline + part.body + newline)
    out.append(b"--" + boundary + (b"--" + newline if closed else b""))
    out.append(epilogue)
    return b"".join(out)


@st.composite
def forms(draw) -> tuple[bytes, str | None, str]:
    """(body, Content-Type, defect) of a multipart form with at most one defect."""
    boundary = draw(bchars)
    defect = draw(part_defects)
    parts = good_parts()
    newline = b"\r\n"
    if defect == "no-disposition":
        parts[0] = Part([b"Content-Type: text/plain"], b"fuzz")
    elif defect == "disposition-not-form-data":
        parts[0] = Part([b'Content-Disposition: attachment; name="batchName"'], b"fuzz")
    elif defect == "no-name":
        parts[0] = Part([b"Content-Disposition: form-data"], b"fuzz")
    elif defect == "empty-name":
        parts.append(field_part(b"", b"x"))
    elif defect == "second-file":
        parts.append(file_part(VALID_CSV, b"two.csv"))
    elif defect == "non-utf8-field":
        parts[0] = field_part(b"batchName", draw(st.sampled_from([b"\xff\xfe", b"caf\xe9", b"\xed\xa0\x80", b"\xc3"])))
    elif defect == "huge-field":
        parts[0] = field_part(b"batchName", b"x" * draw(st.sampled_from([64 * 1024, 64 * 1024 + 1, 1_000_000])))
    elif defect == "non-utf8-filename":
        parts[-1] = file_part(VALID_CSV, draw(st.sampled_from([b"\xff.csv", b"q\x00.csv", b"..\\..\\q.csv", b""])))
    elif defect == "header-without-colon":
        parts[1] = Part([parts[1].headers[0], b"this is not a header"], parts[1].body)
    elif defect == "garbage-header":
        parts[1] = Part([draw(st.binary(max_size=40)).replace(b"\r", b"").replace(b"\n", b"")], parts[1].body)
    elif defect == "lf-only":
        newline = b"\n"
    elif defect == "many-parts":
        parts.extend(field_part(f"x{n}".encode(), b"y") for n in range(draw(st.sampled_from([46, 60]))))  # > 50 parts
    elif defect == "quoted-boundary-in-body":
        parts[-1] = file_part(VALID_CSV + b"--" + boundary.encode() + b"x\r\n")
    elif defect == "no-file":
        parts.pop()
    elif defect == "file-without-filename":
        parts[-1] = Part([b'Content-Disposition: form-data; name="file"'], VALID_CSV)
    elif defect == "huge-header":
        parts[1] = Part([parts[1].headers[0] + b"; x=" + b"y" * 100_000], parts[1].body)
    body = encode_form(boundary.encode(), parts, newline=newline,
                       closed=defect != "unclosed",
                       preamble=b"preamble\r\n" if defect == "preamble" else b"",
                       epilogue=draw(st.sampled_from([b"", b"\r\n", b"epilogue"])))
    quoted = draw(st.booleans()) or " " in boundary or any(c in boundary for c in "'()+,/:=?")
    content_type = "multipart/form-data; boundary=" + (f'"{boundary}"' if quoted else boundary)
    return body, content_type, defect


@fuzz_settings(60)
@given(form=forms())
@example(form=(encode_form(b"b", good_parts(), closed=False)[:-3], "multipart/form-data; boundary=b", "truncated"))
@example(form=(encode_form(b"b", good_parts()), "multipart/form-data; boundary=" + "b" * 201, "long-boundary"))
def test_a_malformed_multipart_form_gets_202_or_a_coded_4xx(uploads, form):
    body, content_type, defect = form

    response = uploads.raw(body, content_type)

    if defect in ("second-file", "huge-field", "many-parts", "no-file", "file-without-filename", "no-disposition",
                  "disposition-not-form-data", "no-name", "long-boundary", "truncated", "unclosed", "non-utf8-field"):
        assert response.status_code >= 400, defect
    if defect == "huge-field" and len(body) < MAX_BODY:
        assert code_of(response) in ("FIELD_TOO_LONG", "INVALID_BATCH_NAME")


content_types = st.one_of(
    st.none(),
    bchars.map(lambda boundary: f"multipart/form-data; boundary={boundary}"),
    st.sampled_from(["multipart/form-data", "multipart/form-data; boundary=", 'multipart/form-data; boundary=""',
                     "multipart/mixed; boundary=b", "MULTIPART/FORM-DATA; BOUNDARY=b", "application/json",
                     "application/x-www-form-urlencoded", "text/csv", "application/octet-stream", "*/*", ";", "",
                     "multipart/form-data; boundary=b; boundary=c", "multipart/form-data; charset=utf-16; boundary=b",
                     "multipart/form-data;boundary=\"b", "multipart/form-data; boundary=b\x00"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60),
)


@fuzz_settings(40)
@given(body=st.binary(max_size=600) | st.just(encode_form(b"b", good_parts())), content_type=content_types)
def test_any_body_with_any_content_type_gets_202_or_a_coded_4xx(uploads, body, content_type):
    uploads.raw(body, content_type)


def test_a_body_over_the_cap_is_refused_with_413_before_it_is_parsed(uploads):
    body = encode_form(b"b", [*good_parts()[:-1], file_part(b"QUESTION\n" + b"x" * MAX_BODY)])

    response = uploads.raw(body, "multipart/form-data; boundary=b")

    assert (response.status_code, code_of(response)) == (413, "PAYLOAD_TOO_LARGE")


# ------------------------------------------------------------------------------ over real HTTP


def test_a_chunked_upload_over_the_cap_gets_413_over_real_http(live):
    """No Content-Length (Transfer-Encoding: chunked): the cap holds while the body streams in."""
    live.qstash.set_faults({"paused": True})
    body = encode_form(b"b", [*good_parts()[:-1], file_part(b"QUESTION\n" + b"x" * MAX_BODY)])

    response = requests.post(live.base_url + PATH, data=(body[n:n + 65_536] for n in range(0, len(body), 65_536)),
                             headers={**live.headers("partner"), "Content-Type": "multipart/form-data; boundary=b"},
                             timeout=30)

    assert (response.status_code, response.json()["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert live.services.store.batches.count_documents({}) == 0


@fuzz_settings(10)
@given(form=forms())
def test_a_malformed_form_over_real_http_gets_202_or_a_coded_4xx(live, form):
    live.qstash.set_faults({"paused": True})
    body, content_type, _ = form
    store = live.services.store
    before = store.batches.count_documents({}), store.batch_items.count_documents({})

    response = requests.post(live.base_url + PATH, data=body, timeout=30,
                             headers={**live.headers("partner"), "Content-Type": content_type})

    assert response.status_code == 202 or (400 <= response.status_code < 500 and CODE.fullmatch(
        response.json()["error"]["code"])), response.text[:300]
    if response.status_code != 202:
        assert (store.batches.count_documents({}), store.batch_items.count_documents({})) == before
