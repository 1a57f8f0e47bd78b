"""Writing results: formula-safe CSV and XLSX downloads and header-safe file names."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from urllib.parse import unquote

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.errors import AppError
from lib.export import (
    CSV_CHUNK_CHARS,
    XLSX_MAX_CELL_CHARS,
    content_disposition,
    iter_csv,
    neutralise_cell,
    safe_filename,
    write_xlsx,
)
from lib.spreadsheet import parse_upload

COLUMNS = ["Question", "answer", "responseTimeMs"]


def read_csv(chunks, delimiter: str = ",") -> list[list[str]]:
    data = b"".join(chunks)
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline=""), delimiter=delimiter))


def read_workbook(columns, rows, **options) -> openpyxl.Workbook:
    buffer = io.BytesIO()
    write_xlsx(columns, rows, buffer, **options)
    buffer.seek(0)
    return openpyxl.load_workbook(buffer)


def read_xlsx(columns, rows, **options) -> openpyxl.worksheet.worksheet.Worksheet:
    return read_workbook(columns, rows, **options).active


# ---------------------------------------------------------------- neutralisation


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("-", "'-"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("\tplain", "'\tplain"),
        ("  =1", "'  =1"),
        ("\n=HYPERLINK()", "'\n=HYPERLINK()"),
        ("\x01=1", "'\x01=1"),
        ("normal", "normal"),
        ("a=b", "a=b"),
        ("", ""),
        ("'=already quoted", "'=already quoted"),
        (None, ""),
        (42, "42"),
        (-1, "-1"),
        (-2.5, "-2.5"),
        (True, "True"),
    ],
)
def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_prefixed_with_a_quote(value, expected):
    assert neutralise_cell(value) == expected


# ---------------------------------------------------------------- CSV


def test_csv_starts_with_a_bom_uses_crlf_and_reads_back_neutralised():
    rows = [
        {"Question": "Où est ma déclaration?", "answer": "=HYPERLINK(\"x\")", "responseTimeMs": 812},
        {"Question": 'A "quoted", multi\nline one', "answer": "-done", "responseTimeMs": None},
    ]

    data = b"".join(iter_csv(COLUMNS, rows))

    assert data.startswith("\ufeffQuestion,answer,responseTimeMs\r\n".encode())
    assert data.endswith(b"\r\n")
    assert read_csv([data]) == [
        COLUMNS,
        ["Où est ma déclaration?", "'=HYPERLINK(\"x\")", "812"],
        ['A "quoted", multi\nline one', "'-done", ""],
    ]


def test_csv_header_cells_are_neutralised_too():
    assert read_csv(iter_csv(["=cmd", "ok"], []))[0] == ["'=cmd", "ok"]


def test_a_column_missing_from_a_row_is_written_empty():
    assert read_csv(iter_csv(COLUMNS, [{"Question": "q"}]))[1] == ["q", "", ""]


def test_csv_is_streamed_in_chunks_of_a_few_kilobytes_as_rows_arrive():
    consumed = 0

    def rows():
        nonlocal consumed
        for n in range(2000):
            consumed += 1
            yield {"Question": f"question {n}", "answer": "a" * 50}

    chunks = iter_csv(COLUMNS, rows())
    first = next(chunks)

    assert consumed < 2000
    assert CSV_CHUNK_CHARS <= len(first) < 4 * CSV_CHUNK_CHARS
    rest = list(chunks)
    assert len(rest) > 3
    assert len(read_csv([first, *rest])) == 2001


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_csv_is_written_with_the_delimiter_of_the_uploaded_file(delimiter):
    rows = [{"Question": "Où; et quand?", "answer": "a\tb", "responseTimeMs": 5}]

    data = b"".join(iter_csv(COLUMNS, rows, delimiter=delimiter))

    assert data.startswith(("\ufeff" + delimiter.join(COLUMNS) + "\r\n").encode())
    assert read_csv([data], delimiter) == [COLUMNS, ["Où; et quand?", "a\tb", "5"]]
    assert parse_upload(data, "results.csv", max_rows=10).delimiter == delimiter


def test_csv_refuses_a_delimiter_a_spreadsheet_would_not_detect():
    with pytest.raises(ValueError, match="delimiter"):
        list(iter_csv(COLUMNS, [], delimiter="|"))


cells = st.text(max_size=40) | st.sampled_from(["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "  =1", "-"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(cells, cells), max_size=8))
def test_csv_reads_back_as_the_neutralised_cells_for_any_text(pairs):
    rows = [{"Question": question, "answer": answer} for question, answer in pairs]

    read = read_csv(iter_csv(["Question", "answer"], rows))

    assert read == [["Question", "answer"]] + [[neutralise_cell(q), neutralise_cell(a)] for q, a in pairs]


clean_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40).map(str.strip)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(clean_text.filter(bool) | st.just("=1+1"), clean_text), min_size=1, max_size=8))
def test_an_exported_csv_uploaded_again_gives_back_the_neutralised_cells(pairs):
    rows = [{"Question": question, "answer": answer} for question, answer in pairs]

    table = parse_upload(b"".join(iter_csv(["Question", "answer"], rows)), "results.csv", max_rows=100)

    assert [list(row.original.values()) for row in table.rows] == [
        [neutralise_cell(q), neutralise_cell(a)] for q, a in pairs
    ]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=40), st.text(max_size=40)), max_size=8))
def test_uploading_an_exported_csv_of_any_text_never_raises_anything_but_an_app_error(pairs):
    rows = [{"Question": question, "answer": answer} for question, answer in pairs]

    try:
        parse_upload(b"".join(iter_csv(["Question", "answer"], rows)), "results.csv", max_rows=100)
    except AppError:
        pass


# ---------------------------------------------------------------- XLSX


def test_xlsx_reads_back_with_neutralised_text_and_numbers_kept_as_numbers():
    rows = [
        {"Question": "Où?", "answer": "=1+1", "responseTimeMs": 812},
        {"Question": "@SUM(A1)", "answer": None, "responseTimeMs": 1.5},
    ]

    sheet = read_xlsx(COLUMNS, rows)

    assert [list(row) for row in sheet.iter_rows(values_only=True)] == [
        COLUMNS,
        ["Où?", "'=1+1", 812],
        ["'@SUM(A1)", None, 1.5],
    ]
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_xlsx_header_is_bold_unless_asked_otherwise():
    assert read_xlsx(COLUMNS, [])["A1"].font.b is True
    assert not read_xlsx(COLUMNS, [], bold_header=False)["A1"].font.b


def test_xlsx_removes_characters_xml_cannot_carry_without_uncovering_a_formula():
    sheet = read_xlsx(["Question"], [{"Question": "a\x00b\x07c\x1fd"}, {"Question": "\x01=1+1"}])

    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["abcd", "'=1+1"]


def test_xlsx_truncates_text_to_excels_cell_limit():
    sheet = read_xlsx(["Question"], [{"Question": "x" * (XLSX_MAX_CELL_CHARS + 10)}])

    assert len(sheet["A2"].value) == XLSX_MAX_CELL_CHARS


def test_xlsx_writes_ten_thousand_rows_to_a_file_object():
    rows = ({"Question": f"question {n}", "answer": "answer " * 10, "responseTimeMs": n} for n in range(10_000))
    buffer = io.BytesIO()

    write_xlsx(COLUMNS, rows, buffer)

    table = parse_upload(buffer.getvalue(), "results.xlsx", max_rows=10_000)
    assert len(table.rows) == 10_000
    assert table.rows[-1].original["responseTimeMs"] == "9999"


RESULT_COLUMNS = ["rowNumber", "Question", "answer", "citationUrl", "URL", "createdAt", "interactionId", "note"]
CITATION = "https://www.canada.ca/en/services/passports.html"


def result_rows(count: int = 2) -> list[dict[str, object]]:
    return [
        {"rowNumber": n + 2, "Question": f"Question {n}?", "answer": "A long answer. " * 20, "citationUrl": CITATION,
         "URL": "javascript:alert(1)" if n else "https://www.canada.ca/en.html",
         "createdAt": dt.datetime(2024, 5, 17, 13, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4))),
         "interactionId": "65f0c0ffee00000000000001", "note": CITATION}
        for n in range(count)
    ]


def test_xlsx_columns_get_a_width_by_their_name():
    sheet = read_xlsx(RESULT_COLUMNS, result_rows())

    widths = {column: sheet.column_dimensions[chr(ord("A") + i)].width for i, column in enumerate(RESULT_COLUMNS)}
    assert widths["answer"] == 80
    assert widths["Question"] == 50
    assert widths["interactionId"] == 26
    assert widths["rowNumber"] < 15
    assert widths["citationUrl"] == 45


def test_xlsx_header_row_is_frozen_and_filters_the_used_range():
    sheet = read_xlsx(RESULT_COLUMNS, result_rows(3))

    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:H4"


def test_xlsx_long_text_columns_are_wrapped_and_short_ones_are_not():
    sheet = read_xlsx(RESULT_COLUMNS, result_rows())

    assert sheet["C2"].alignment.wrap_text is True  # answer
    assert sheet["B2"].alignment.wrap_text is True  # Question
    assert not sheet["G2"].alignment.wrap_text  # interactionId


def test_xlsx_http_links_in_url_columns_are_live_and_other_values_are_not():
    sheet = read_xlsx(RESULT_COLUMNS, result_rows())

    assert sheet["D2"].hyperlink.target == CITATION and sheet["D2"].value == CITATION
    assert sheet["D2"].style == "Hyperlink"
    assert sheet["E2"].hyperlink.target == "https://www.canada.ca/en.html"
    assert sheet["E3"].hyperlink is None and sheet["E3"].value == "javascript:alert(1)"
    assert sheet["H2"].hyperlink is None  # a URL in a column not named ...Url stays text


@pytest.mark.parametrize(
    ("value", "linked"),
    [("https://x.example/a?b=c", True), ("http://x.example", True), ("ftp://x.example", False),
     ("https://", False), ("https://x.example/a b", False), ("=HYPERLINK(\"http://x\")", False),
     ("https://x.example/" + "a" * 2100, False)],
)
def test_only_an_http_url_excel_can_open_becomes_a_link(value, linked):
    sheet = read_xlsx(["citationUrl"], [{"citationUrl": value}])

    assert (sheet["A2"].hyperlink is not None) is linked


def test_xlsx_datetimes_are_real_excel_dates_in_utc():
    sheet = read_xlsx(RESULT_COLUMNS, result_rows())

    cell = sheet["F2"]
    assert cell.is_date
    assert cell.value == dt.datetime(2024, 5, 17, 17, 30)
    assert cell.number_format == "yyyy-mm-dd hh:mm:ss"


def test_xlsx_has_a_batch_sheet_with_the_details_given():
    details = [("Batch id", "65f0c0ffee00000000000abc"), ("Name", "=cmd|' /C calc'!A0"),
               ("Providers", ["openai", "canadaca"]), ("Language", "fr"),
               ("Created", dt.datetime(2024, 5, 17, 9, 0, tzinfo=dt.timezone.utc)), ("Rows", 10),
               ("Summary", {"succeeded": 9, "failed": 1})]

    workbook = read_workbook(RESULT_COLUMNS, result_rows(), details=details)

    assert workbook.sheetnames == ["Results", "Batch"]
    sheet = workbook["Batch"]
    assert [list(row) for row in sheet.iter_rows(values_only=True)] == [
        ["Batch id", "65f0c0ffee00000000000abc"], ["Name", "'=cmd|' /C calc'!A0"], ["Providers", "openai, canadaca"],
        ["Language", "fr"], ["Created", dt.datetime(2024, 5, 17, 9, 0)], ["Rows", 10],
        ["Summary", "succeeded: 9; failed: 1"],
    ]
    assert sheet["B5"].is_date and sheet["A1"].font.b is True


def test_xlsx_without_details_has_the_results_sheet_only():
    assert read_workbook(COLUMNS, []).sheetnames == ["Results"]


# ---------------------------------------------------------------- file names

SAFE_NAME = re.compile(r"^[A-Za-z0-9._ -]{1,100}\.[a-z]+$")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Passport questions", "Passport questions.csv"),
        ("a\r\nSet-Cookie: x", "a_Set-Cookie_ x.csv"),
        ('say "hi"; now', "say _hi_ now.csv"),
        ("../../etc/passwd", "etc_passwd.csv"),
        ("C:\\Users\\me", "C_Users_me.csv"),
        ("Été 2024 — résultats", "Ete 2024 resultats.csv"),
        ("", "batch.csv"),
        ("   ", "batch.csv"),
        ("批处理", "batch.csv"),
        ("...", "batch.csv"),
    ],
)
def test_a_download_name_keeps_only_safe_ascii_characters(name, expected):
    assert safe_filename(name, "csv") == expected


def test_a_download_name_is_capped_at_one_hundred_characters_before_its_extension():
    assert safe_filename("x" * 300, "xlsx") == "x" * 100 + ".xlsx"


@pytest.mark.parametrize("name", ["a\r\nSet-Cookie: x", 'q"uote;semi', "a/b\\c", "Été", "", "x" * 500, "\x00\x7f"])
def test_a_content_disposition_cannot_inject_a_header_and_keeps_the_original_name(name):
    value = content_disposition(name, "csv")

    assert "\r" not in value and "\n" not in value
    assert value.isascii()
    match = re.fullmatch(r"attachment; filename=\"([^\";\\]*)\"; filename\*=UTF-8''([A-Za-z0-9%._~-]+)", value)
    assert match, value
    assert SAFE_NAME.match(match.group(1))
    original = unquote(match.group(2))
    assert original.endswith(".csv")
    assert not re.search(r"[\x00-\x1f\x7f/\\]", original)


def test_a_content_disposition_carries_accents_in_its_utf8_name():
    assert content_disposition("Été 2024", "xlsx") == (
        "attachment; filename=\"Ete 2024.xlsx\"; filename*=UTF-8''%C3%89t%C3%A9%202024.xlsx"
    )
