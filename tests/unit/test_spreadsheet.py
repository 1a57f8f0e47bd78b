"""Reading uploads: CSV and XLSX in, typed question rows or a coded client error out."""

from __future__ import annotations

import datetime as dt
import io
import random
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.errors import AppError, BadRequest, PayloadTooLarge, UnsupportedMediaType
from lib.spreadsheet import (
    MAX_ROW_WARNINGS,
    MAX_UNCOMPRESSED_BYTES,
    RATIO_CHECK_FLOOR_BYTES,
    detect_delimiter,
    parse_upload,
)


def parse(data: bytes | str, filename: str | None = "questions.csv", **limits):
    if isinstance(data, str):
        data = data.encode("utf-8")
    limits.setdefault("max_rows", 100)
    return parse_upload(data, filename, **limits)


def xlsx(*sheets: list[list[object]], edit=None) -> bytes:
    """An XLSX with one sheet per argument, built with openpyxl (no binary fixtures)."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for number, rows in enumerate(sheets, start=1):
        sheet = workbook.create_sheet(f"Sheet{number}")
        for row in rows:
            sheet.append(row)
        if edit:
            edit(sheet)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def replace_in_member(data: bytes, member: str, old: str, new: str) -> bytes:
    """The same zip with one text replacement made in one member."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == member:
                assert old in content.decode()
                content = content.decode().replace(old, new).encode()
            target.writestr(info.filename, content)
    return out.getvalue()


def error_of(data: bytes | str, filename: str | None = "questions.csv", **limits) -> AppError:
    with pytest.raises(AppError) as caught:
        parse(data, filename, **limits)
    return caught.value


# ---------------------------------------------------------------- the shared samples


def test_the_english_sample_is_read_with_its_question_and_url_columns(samples_dir: Path):
    table = parse((samples_dir / "questions-en.csv").read_bytes(), "questions-en.csv")

    assert table.file_type == "csv"
    assert table.columns == ["REDACTEDQUESTION", "URL"]
    assert (table.question_column, table.chat_column, table.url_column) == ("REDACTEDQUESTION", None, "URL")
    assert len(table.rows) == 15
    assert table.rows[0].row_number == 2
    assert table.rows[0].question == "How do I renew my passport?"
    assert table.rows[0].referring_url.startswith("https://www.canada.ca/")
    assert table.rows[3].referring_url is None
    assert table.warnings == []


def test_the_french_sample_with_a_bom_and_semicolons_keeps_its_accented_column(samples_dir: Path):
    table = parse((samples_dir / "questions-fr.csv").read_bytes(), "questions-fr.csv")

    assert table.columns == ["Question", "URL", "Référence"]
    assert table.question_column == "Question"
    assert table.rows[0].original == {
        "Question": "Comment renouveler mon passeport?",
        "URL": "https://www.canada.ca/fr/immigration-refugies-citoyennete/services/passeports-canadiens.html",
        "Référence": "F-1",
    }
    assert table.rows[4].question == "Où envoyer ma demande de pension de la Sécurité de la vieillesse?"


def test_the_conversations_sample_gives_chat_labels_and_keeps_the_ticket_column(samples_dir: Path):
    table = parse((samples_dir / "conversations.csv").read_bytes(), "conversations.csv")

    assert table.columns == ["chatId", "REDACTEDQUESTION", "URL", "ticket"]
    assert (table.chat_column, table.url_column) == ("chatId", "URL")
    assert [row.chat_label for row in table.rows[:7]] == ["c1", "c2", "c1", "c3", "c2", "c1", None]
    assert table.rows[0].original["ticket"] == "T-100"
    assert list(table.rows[0].original) == table.columns


# ---------------------------------------------------------------- encodings and delimiters

ACCENTED = "Où est ma déclaration? Ça coûte 5 €"


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param(f"Question\r\n{ACCENTED}\r\n".encode("utf-8"), id="utf-8"),
        pytest.param(f"Question\r\n{ACCENTED}\r\n".encode("utf-8-sig"), id="utf-8 with BOM"),
        pytest.param(b"\xff\xfe" + f"Question\r\n{ACCENTED}\r\n".encode("utf-16-le"), id="utf-16 LE with BOM"),
        pytest.param(b"\xfe\xff" + f"Question\r\n{ACCENTED}\r\n".encode("utf-16-be"), id="utf-16 BE with BOM"),
        pytest.param(f"Question\r\n{ACCENTED}\r\n".encode("cp1252"), id="windows-1252"),
    ],
)
def test_each_supported_encoding_is_decoded_with_its_accents(encoded):
    table = parse(encoded)

    assert table.columns == ["Question"]
    assert [row.question for row in table.rows] == [ACCENTED]


def test_text_that_is_valid_utf8_is_not_read_as_windows_1252():
    table = parse("Question\nrésumé\n".encode("utf-8"))

    assert table.rows[0].question == "résumé"


def mixed(*lines: tuple[str, str]) -> bytes:
    """A file of lines, each (text, encoding)."""
    return b"".join(text.encode(encoding) + b"\r\n" for text, encoding in lines)


def test_a_utf8_file_with_one_windows_1252_line_keeps_its_utf8_accents_and_names_that_row():
    data = mixed(("Question,Ville", "utf-8"), ("Où?,Québec", "utf-8"), ("Quand?,Montréal", "cp1252"),
                 ("Qui?,Trois-Rivières", "utf-8"))

    table = parse(data)

    assert [row.original["Ville"] for row in table.rows] == ["Québec", "Montréal", "Trois-Rivières"]
    assert table.warnings == [{
        "code": "MIXED_ENCODING", "rowNumber": None, "rowNumbers": [3],
        "message": "Row 3 was not valid UTF-8 and was read as Windows-1252; check its accents.",
    }]


def test_every_row_read_as_windows_1252_is_named_in_one_warning():
    lines = [("Question", "utf-8")] + [(f"Question numéro {n}?", "utf-8") for n in range(2, 14)]
    lines[6], lines[11] = ("Où est la 7e?", "cp1252"), ("Où est la 12e?", "cp1252")

    table = parse(mixed(*lines))

    assert table.rows[5].question == "Où est la 7e?" and table.rows[10].question == "Où est la 12e?"
    assert table.rows[0].question == "Question numéro 2?"
    assert [w["message"] for w in table.warnings] == [
        "Rows 7, 12 were not valid UTF-8 and were read as Windows-1252; check their accents."
    ]


def test_a_windows_1252_line_inside_a_quoted_multi_line_cell_is_reported_by_its_spreadsheet_row():
    data = "Question,Note\r\nq1,é\r\n".encode() + '"first line\r\nsecond é",n\r\nq3,ç\r\n'.encode("cp1252")
    data += "q4,à\r\nq5,ô\r\n".encode()

    table = parse(data)

    assert table.rows[1].question == "first line\r\nsecond é"
    assert table.warnings[0]["rowNumbers"] == [3, 4]


def test_a_windows_1252_file_is_read_as_windows_1252_without_a_warning():
    data = mixed(("Question,Ville", "cp1252"), ("Où?,Québec", "cp1252"), ("Quand?,Montréal", "cp1252"))

    table = parse(data)

    assert [row.original["Ville"] for row in table.rows] == ["Québec", "Montréal"]
    assert table.warnings == []


def test_a_windows_1252_file_with_a_line_that_is_utf8_by_accident_stays_windows_1252():
    # "Ã©" in Windows-1252 is the UTF-8 of "é": outnumbered by the file's other accented lines.
    data = mixed(("Question", "cp1252"), ("Ã© is mojibake", "cp1252"), ("Québec", "cp1252"), ("Montréal", "cp1252"))

    table = parse(data)

    assert [row.question for row in table.rows] == ["Ã© is mojibake", "Québec", "Montréal"]
    assert table.warnings == []


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [("Question,URL\nq,u\n", ","), ("Question;URL\nq;u\n", ";"), ("Question\tURL\nq\tu\n", "\t"),
     ("Question\nWhere, and when?\n", ",")],
    ids=["comma", "semicolon", "tab", "one column"],
)
def test_a_csv_keeps_the_delimiter_it_was_read_with(text, delimiter):
    assert parse(text).delimiter == delimiter


def test_a_workbook_has_no_delimiter():
    assert parse(xlsx([["Question"], ["q"]]), "book.xlsx").delimiter is None


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_each_delimiter_is_detected_from_the_header(delimiter):
    text = delimiter.join(["chatId", "Question", "URL"]) + "\n" + delimiter.join(["c1", '"Hi, there; you"', "u"])

    table = parse(text)

    assert table.columns == ["chatId", "Question", "URL"]
    assert table.rows[0].original == {"chatId": "c1", "Question": "Hi, there; you", "URL": "u"}


def test_delimiters_inside_quoted_headers_are_not_counted():
    assert detect_delimiter('"a,b,c";Question;URL\n1,2,3,4,5\n') == ";"


def test_a_one_column_file_keeps_unquoted_commas_in_the_question():
    table = parse("Question\nWhere, and when, do I apply?\n")

    assert table.rows[0].question == "Where, and when, do I apply?"


def test_a_quoted_field_may_span_lines_and_counts_as_one_spreadsheet_row():
    table = parse('Question,Note\r\n"First line\r\nsecond line",n1\r\nNext,n2\r\n')

    assert [(row.row_number, row.question) for row in table.rows] == [
        (2, "First line\r\nsecond line"),
        (3, "Next"),
    ]


# ---------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("header", "role"),
    [
        ("Problem Details", "question"),
        ("problem-details", "question"),
        ("redacted_question", "question"),
        ("  question  ", "question"),
        ("Referring-URL", "url"),
        ("referring url", "url"),
        ("url", "url"),
        ("CHATID", "chat"),
        ("chat_id", "chat"),
    ],
)
def test_header_aliases_are_matched_ignoring_case_spaces_underscores_and_hyphens(header, role):
    other = {"question": "Other", "url": "Question", "chat": "Question"}[role]
    table = parse(f"{other},{header}\nx,y\n")

    found = {"question": table.question_column, "url": table.url_column, "chat": table.chat_column}[role]
    assert found == header  # matched ignoring spaces, kept exactly as written


@pytest.mark.parametrize(
    "data",
    ["QUESTION,REDACTEDQUESTION\nraw,masked\n", "REDACTEDQUESTION,QUESTION\nmasked,raw\n"],
    ids=["redacted second", "redacted first"],
)
def test_redactedquestion_wins_over_question_whatever_their_order(data):
    table = parse(data)

    assert table.question_column == "REDACTEDQUESTION"
    assert table.rows[0].question == "masked"
    assert table.rows[0].original["QUESTION"] == "raw"


def test_question_wins_over_problem_details():
    table = parse("Problem Details,Question\nlong story,short question\n")

    assert table.rows[0].question == "short question"


def test_duplicate_and_empty_headers_are_made_unique_in_their_original_order():
    table = parse("Question,Note,Note,,Note\nq,a,b,c,d\n")

    assert table.columns == ["Question", "Note", "Note (2)", "Column 4", "Note (3)"]
    assert table.rows[0].original == {"Question": "q", "Note": "a", "Note (2)": "b", "Column 4": "c", "Note (3)": "d"}


def test_a_repeated_name_never_takes_a_name_the_file_already_uses():
    assert parse("Note,Note,Note (2),Question\na,b,c,q\n").columns == ["Note", "Note (3)", "Note (2)", "Question"]


@pytest.mark.parametrize(
    ("text", "columns"),
    [
        pytest.param("Question,URL,,,\nq,u,,\n", ["Question", "URL"], id="trailing padding"),
        pytest.param("Question,URL,,,\nq,u,,x\n", ["Question", "URL", "Column 4"], id="trailing cell with a value"),
        pytest.param(",,Question,URL\n,,q,u\n", ["Question", "URL"], id="table starting at column C"),
        pytest.param("Question,,URL\nq,n,u\n", ["Question", "Column 2", "URL"], id="unnamed column with a value"),
    ],
)
def test_a_column_with_neither_a_header_nor_a_value_is_dropped(text, columns):
    assert parse(text).columns == columns


# ---------------------------------------------------------------- rows and values


def test_short_rows_are_padded_and_extra_empty_cells_are_ignored():
    table = parse("Question,URL,Note\nq1\nq2,u,n,,,\n")

    assert table.rows[0].original == {"Question": "q1", "URL": "", "Note": ""}
    assert table.rows[1].original == {"Question": "q2", "URL": "u", "Note": "n"}


def test_values_are_stripped_and_control_characters_removed_but_line_breaks_kept():
    table = parse('Question,Note\n"  a\x07b\x1b \tc\nd  ",\x0b n \n')

    assert table.rows[0].question == "ab \tc\nd"
    assert table.rows[0].original["Note"] == "n"


def test_fully_empty_lines_are_skipped_without_shifting_row_numbers():
    table = parse("Question,Note\n\nq1,a\n,\n  ,  \nq2,b\n")

    assert [(row.row_number, row.question) for row in table.rows] == [(3, "q1"), (6, "q2")]
    assert table.warnings == []


def test_rows_with_a_blank_question_are_skipped_with_one_warning_each():
    table = parse("Question,Note\nq1,a\n ,b\nq3,c\n,d\n")

    assert [row.row_number for row in table.rows] == [2, 4]
    assert table.warnings == [
        {"code": "BLANK_QUESTION", "rowNumber": 3, "message": "Row 3: the question is blank; the row was skipped."},
        {"code": "BLANK_QUESTION", "rowNumber": 5, "message": "Row 5: the question is blank; the row was skipped."},
    ]


def test_blank_question_warnings_are_capped_with_a_summary_line():
    extra = 7
    table = parse("Question,Note\nq,a\n" + ",x\n" * (MAX_ROW_WARNINGS + extra), max_rows=10)

    assert len(table.warnings) == MAX_ROW_WARNINGS + 1
    assert table.warnings[-1] == {"code": "MORE_BLANK_QUESTIONS", "rowNumber": None, "count": extra,
                                  "message": f"{extra} more rows with a blank question were skipped."}


def test_chat_label_and_url_are_none_when_blank():
    row = parse("chatId,Question,URL\n  ,q,\n").rows[0]

    assert (row.chat_label, row.referring_url) == (None, None)


def test_exactly_max_rows_questions_are_accepted():
    table = parse("Question\n" + "q\n" * 5, max_rows=5)

    assert len(table.rows) == 5


# ---------------------------------------------------------------- client errors

Unsupported = UnsupportedMediaType
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)


def garbage(size: int = 2048, *, with_nul: bool) -> bytes:
    rng = random.Random(7)
    data = bytes(rng.randrange(0 if with_nul else 1, 256) for _ in range(size))
    return data if with_nul else data.replace(b"\x00", b"\x01")


@pytest.mark.parametrize(
    ("data", "filename", "error", "code"),
    [
        pytest.param(b"", "q.csv", BadRequest, "EMPTY_FILE", id="zero bytes"),
        pytest.param(b" \r\n\t \n", "q.csv", BadRequest, "EMPTY_FILE", id="whitespace"),
        pytest.param(b"\xef\xbb\xbf", "q.csv", BadRequest, "EMPTY_FILE", id="utf-8 BOM only"),
        pytest.param(b"\xff\xfe" + " \r\n".encode("utf-16-le"), "q.csv", BadRequest, "EMPTY_FILE", id="utf-16 blank"),
        pytest.param(b"Question,URL\r\n", "q.csv", BadRequest, "NO_DATA_ROWS", id="header only"),
        pytest.param(b"Question,URL\r\n\r\n,,\r\n", "q.csv", BadRequest, "NO_DATA_ROWS", id="header and blank lines"),
        pytest.param(b"Question,URL\n ,http://x\n", "q.csv", BadRequest, "NO_DATA_ROWS", id="blank questions"),
        pytest.param(b"Title,URL\nx,y\n", "q.csv", BadRequest, "MISSING_QUESTION_COLUMN", id="no question column"),
        pytest.param(garbage(with_nul=True), "q.csv", BadRequest, "UNREADABLE_FILE", id="binary with NUL"),
        pytest.param(garbage(with_nul=False), "q.csv", BadRequest, "UNREADABLE_FILE", id="binary without NUL"),
        pytest.param(b"Question\nq\n", "q.xlsx", BadRequest, "UNREADABLE_FILE", id="xlsx name, csv content"),
        pytest.param(b"PK\x03\x04" + bytes(200), "q.xlsx", BadRequest, "UNREADABLE_FILE", id="corrupt zip"),
        pytest.param(OLE2, "q.xlsx", UnsupportedMediaType, "ENCRYPTED_OR_LEGACY_WORKBOOK", id="OLE2"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "q.csv", Unsupported, "UNSUPPORTED_FILE_TYPE", id="pdf"),
        pytest.param(PNG, "q.csv", UnsupportedMediaType, "UNSUPPORTED_FILE_TYPE", id="png"),
        pytest.param(b"GIF89a" + bytes(20), None, UnsupportedMediaType, "UNSUPPORTED_FILE_TYPE", id="gif"),
        pytest.param(b"\xff\xd8\xff\xe0" + bytes(20), "q.csv", Unsupported, "UNSUPPORTED_FILE_TYPE", id="jpeg"),
    ],
)
def test_unusable_files_are_refused_with_a_code(data, filename, error, code):
    raised = error_of(data, filename)

    assert type(raised) is error
    assert raised.code == code
    assert raised.message


def test_a_missing_question_column_lists_the_accepted_names_and_the_columns_found():
    raised = error_of("Title;Link\nx;y\n")

    assert raised.details == {
        "accepted": ["REDACTEDQUESTION", "QUESTION", "PROBLEM DETAILS"],
        "found": ["Title", "Link"],
    }
    assert "Title, Link" in raised.message


def test_an_encrypted_or_legacy_workbook_is_told_to_save_as_xlsx_without_password_or_csv():
    raised = error_of(OLE2, "protected.xlsx")

    assert raised.status == 415
    assert "password" in raised.message and "CSV" in raised.message


def test_a_zip_that_is_not_a_workbook_is_unreadable():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("questions.csv", "Question\nq\n")

    assert error_of(buffer.getvalue(), "questions.zip").code == "UNREADABLE_FILE"


def test_a_truncated_workbook_is_unreadable():
    data = xlsx([["Question"], ["q"]])

    assert error_of(data[: len(data) // 2], "q.xlsx").code == "UNREADABLE_FILE"


def test_more_questions_than_max_rows_is_refused_with_the_limit():
    raised = error_of("Question\n" + "q\n" * 6, max_rows=5)

    assert raised.code == "TOO_MANY_ROWS"
    assert raised.details == {"maxRows": 5}


def test_reading_stops_as_soon_as_the_row_cap_is_passed():
    # Row 8 would be refused for its extra cells if the reader had gone on.
    text = "Question,Note\n" + "q,n\n" * 6 + "a,b,c\n"
    assert error_of(text, max_rows=100).code == "ROW_HAS_EXTRA_CELLS"

    assert error_of(text, max_rows=5).code == "TOO_MANY_ROWS"


def test_more_columns_than_max_columns_is_refused():
    raised = error_of("Question,a,b,c,d,e\nq\n", max_columns=5)

    assert raised.code == "TOO_MANY_COLUMNS"
    assert raised.details["maxColumns"] == 5


def test_a_cell_longer_than_the_limit_is_refused_with_its_row_number():
    raised = error_of("Question,Note\nq,ok\nq," + "x" * 51 + "\n", max_cell_chars=50)

    assert raised.code == "CELL_TOO_LONG"
    assert raised.details == {"row": 3, "column": "Note", "maxChars": 50}


def test_a_cell_beyond_the_csv_modules_own_field_limit_is_refused_as_too_long():
    raised = error_of("Question\n" + "x" * 200_000 + "\n")

    assert raised.code == "CELL_TOO_LONG"


def test_a_row_with_extra_non_empty_cells_is_refused_with_its_row_number():
    raised = error_of("Question;URL\nq;u\nq;u;stray\n")

    assert raised.code == "ROW_HAS_EXTRA_CELLS"
    assert raised.details["row"] == 3
    assert "delimiter" in raised.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.sampled_from(["q.csv", "q.xlsx", None]), st.sampled_from([b"", b"PK\x03\x04"]))
def test_no_input_raises_anything_but_an_app_error(data, filename, prefix):
    try:
        parse(prefix + data, filename)
    except AppError:
        pass


# ---------------------------------------------------------------- XLSX


def test_an_xlsx_upload_is_read_from_its_first_sheet_only():
    data = xlsx([["Question", "URL"], ["first sheet", "u"]], [["Question"], ["second sheet"]])

    table = parse(data, "book.xlsx")

    assert table.file_type == "xlsx"
    assert [row.question for row in table.rows] == ["first sheet"]


@pytest.mark.parametrize("filename", ["book.xlsx", "questions.csv", None])
def test_a_workbook_is_recognised_by_its_content_whatever_its_name(filename):
    assert parse(xlsx([["Question"], ["q"]]), filename).file_type == "xlsx"


def test_xlsx_cell_values_become_the_text_a_user_sees():
    row = ["q", 42, 3.5, 2.0, True, False, dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 1, 13, 45, 5), None, "end"]

    table = parse(xlsx([["Question", "i", "f", "whole", "t", "f2", "date", "datetime", "none", "last"], row]), "b.xlsx")

    assert list(table.rows[0].original.values()) == [
        "q", "42", "3.5", "2", "TRUE", "FALSE", "2024-03-01", "2024-03-01T13:45:05", "", "end",
    ]


def test_a_formula_is_read_as_its_cached_value_or_as_empty_when_never_calculated():
    def formulas(sheet):
        sheet["B2"] = "=1+1"
        sheet["C2"] = "=NOW()"

    data = xlsx([["Question", "Sum", "Now"], ["q"]], edit=formulas)
    data = replace_in_member(data, "xl/worksheets/sheet1.xml", "<f>1+1</f><v />", "<f>1+1</f><v>2</v>")

    row = parse(data, "b.xlsx").rows[0]

    assert row.original == {"Question": "q", "Sum": "2", "Now": ""}


def test_a_merged_cell_gives_its_value_in_the_top_left_cell_only():
    def merge(sheet):
        sheet.merge_cells("A2:B2")

    table = parse(xlsx([["Question", "Note"], ["merged question", None]], edit=merge), "b.xlsx")

    assert table.rows[0].original == {"Question": "merged question", "Note": ""}


def test_xlsx_row_numbers_count_the_empty_rows_in_between():
    def gap(sheet):
        sheet["A5"] = "after gap"
        sheet["B6"] = "no question"

    table = parse(xlsx([["Question", "Note"], ["first"]], edit=gap), "b.xlsx")

    assert [(row.row_number, row.question) for row in table.rows] == [(2, "first"), (5, "after gap")]
    assert [(w["code"], w["rowNumber"]) for w in table.warnings] == [("BLANK_QUESTION", 6)]


def test_a_sheet_that_declares_a_huge_dimension_is_read_by_its_actual_cells():
    data = replace_in_member(
        xlsx([["Question", "Note"], ["q", "n"]]), "xl/worksheets/sheet1.xml", 'ref="A1:B2"', 'ref="A1:XFD1048576"'
    )

    table = parse(data, "b.xlsx")

    assert table.columns == ["Question", "Note"]
    assert len(table.rows) == 1


def test_an_empty_first_sheet_is_an_empty_file():
    assert error_of(xlsx([], [["Question"], ["q"]]), "b.xlsx").code == "EMPTY_FILE"


def test_xlsx_blank_and_too_many_rows_follow_the_csv_rules():
    data = xlsx([["Question"]] + [["q"]] * 4)

    assert error_of(data, "b.xlsx", max_rows=3).details == {"maxRows": 3}


def zip_of_zeros(members: dict[str, int]) -> bytes:
    buffer = io.BytesIO()
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        for name, size in members.items():
            with archive.open(name, "w") as member:
                for _ in range(size // len(chunk)):
                    member.write(chunk)
    return buffer.getvalue()


def test_a_zip_bomb_member_is_refused_before_it_is_inflated():
    bomb = zip_of_zeros({"xl/worksheets/sheet1.xml": 2 * RATIO_CHECK_FLOOR_BYTES})
    started = time.monotonic()

    raised = error_of(bomb, "bomb.xlsx")

    assert type(raised) is PayloadTooLarge
    assert raised.code == "WORKBOOK_TOO_LARGE"
    assert time.monotonic() - started < 1.0


def test_a_workbook_larger_than_the_cap_once_uncompressed_is_refused():
    count = MAX_UNCOMPRESSED_BYTES // RATIO_CHECK_FLOOR_BYTES + 1
    data = zip_of_zeros({f"xl/media/part{n}.bin": RATIO_CHECK_FLOOR_BYTES for n in range(count)})

    raised = error_of(data, "big.xlsx")

    assert (raised.status, raised.code) == (413, "WORKBOOK_TOO_LARGE")


# ---------------------------------------------------------------- XLSX past Excel's limits

SHEET = "xl/worksheets/sheet1.xml"
TIME_BOUND = 2.0  # seconds; these files are read in milliseconds, the bound only keeps CI from flaking


def question_at_row(row: int) -> bytes:
    """A 2 KB workbook whose only question claims to sit at row `row`."""
    return replace_in_member(xlsx([["Question"], ["q"]]), SHEET, '<row r="2"><c r="A2"', f'<row r="{row}"><c r="A{row}"')


def timed_parse(data: bytes) -> tuple[object, float]:
    """The table or the AppError for `data`, and the seconds it took."""
    started = time.perf_counter()
    try:
        outcome: object = parse(data, "book.xlsx")
    except AppError as error:
        outcome = error
    return outcome, time.perf_counter() - started


@pytest.mark.parametrize("row", [1_048_577, 4_194_304, 9_999_999_999, 10**30])
def test_a_row_numbered_past_excels_last_row_is_refused_at_once(row):
    raised, seconds = timed_parse(question_at_row(row))

    assert isinstance(raised, BadRequest)
    assert raised.code == "ROW_NUMBER_OUT_OF_RANGE"
    assert "1,048,576" in raised.message and "save it as .xlsx again" in raised.message
    assert seconds < TIME_BOUND


def test_a_question_on_excels_last_row_is_accepted_at_once():
    table, seconds = timed_parse(question_at_row(1_048_576))

    assert [(row.row_number, row.question) for row in table.rows] == [(1_048_576, "q")]
    assert seconds < TIME_BOUND


def test_a_cell_right_of_column_xfd_is_refused():
    data = replace_in_member(xlsx([["Question"], ["q"]]), SHEET, '<c r="A2"', '<c r="XFE2"')

    raised = error_of(data, "book.xlsx")

    assert raised.code == "COLUMN_OUT_OF_RANGE"
    assert raised.details == {"row": 2, "maxColumn": 16_384}


def test_a_row_past_the_limit_is_refused_before_the_rest_of_the_sheet_is_read():
    data = replace_in_member(question_at_row(2_000_000), SHEET, "</sheetData>", "</sheetData><broken")

    assert error_of(data, "book.xlsx").code == "ROW_NUMBER_OUT_OF_RANGE"


def test_a_dimension_claiming_ten_million_rows_costs_no_time():
    data = replace_in_member(xlsx([["Question"], ["q"]]), SHEET, 'ref="A1:A2"', 'ref="A1:XFD9999999"')

    table, seconds = timed_parse(data)

    assert [row.question for row in table.rows] == ["q"]
    assert seconds < TIME_BOUND


def test_far_apart_rows_keep_their_own_numbers_without_the_rows_between_being_read():
    data = replace_in_member(
        xlsx([["Question"], ["q"]]), SHEET, "</row></sheetData>",
        '</row><row r="900000"><c r="A900000" t="inlineStr"><is><t>far</t></is></c></row></sheetData>',
    )

    table, seconds = timed_parse(data)

    assert [(row.row_number, row.question) for row in table.rows] == [(2, "q"), (900_000, "far")]
    assert seconds < TIME_BOUND


def test_the_largest_legitimate_sheet_is_still_read_cell_for_cell():
    start = dt.datetime(2024, 1, 1, 9, 30)
    rows = [[f"Question {n}?", n, start + dt.timedelta(days=n), None, "=1+1"] for n in range(10_000)]

    table = parse(xlsx([["Question", "n", "asked", "", "formula"]] + rows), "book.xlsx", max_rows=10_000)

    assert table.columns == ["Question", "n", "asked", "formula"]
    assert len(table.rows) == 10_000
    assert table.rows[0].row_number == 2 and table.rows[-1].row_number == 10_001
    assert table.rows[-1].original == {
        "Question": "Question 9999?", "n": "9999", "asked": (start + dt.timedelta(days=9999)).isoformat(), "formula": "",
    }
