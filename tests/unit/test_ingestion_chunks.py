"""Chunked reading of an upload: the same rows as one piece, in chunks of whole conversations."""

from __future__ import annotations

import io

import openpyxl
import pytest

from lib.ingestion import chunks_of, conversation_chat_id, place
from lib.spreadsheet import ParsedRow, TableLayout, iter_upload_rows, parse_upload, scan_upload


def xlsx(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


FILES = {
    "csv with conversations": b"chatId,QUESTION,notes\na,q1,x\n,q2,\nb,q3,y\na,q4,z\n",
    "semicolons, blank rows and a blank question": b"QUESTION;ticket\r\n\r\nq1;1\r\n;2\r\nq3;3\r\n",
    "a column with values under no header": b"QUESTION,\nq1,\nq2,extra\n",
    "windows-1252 lines in a UTF-8 file": "QUESTION\nété\n".encode() + "où\n".encode("cp1252") + "déjà\n".encode(),
    "utf-16": "QUESTION,ticket\nq1,1\nq2,2\n".encode("utf-16"),
    "xlsx": xlsx([["chatId", "Question", "URL"], ["c1", "q1", "https://x"], [None, None, None], ["c1", "q2", None]]),
}


@pytest.mark.parametrize("name", FILES)
def test_a_scanned_file_read_again_by_its_layout_gives_the_rows_of_a_one_piece_parse(name):
    data = FILES[name]
    table = parse_upload(data, "upload.xlsx" if name == "xlsx" else "upload.csv", max_rows=100)

    layout = TableLayout.from_doc(scan_upload(data, "f", max_rows=100).to_doc())
    with iter_upload_rows(data, layout) as rows:
        read = list(rows)

    assert read == table.rows
    shell = layout.shell()
    assert (shell.columns, shell.question_column, shell.chat_column, shell.url_column, shell.delimiter) == (
        table.columns, table.question_column, table.chat_column, table.url_column, table.delimiter)
    assert scan_upload(data, "f", max_rows=100).warnings == table.warnings


@pytest.mark.parametrize(("data", "code"), [
    (b"", "EMPTY_FILE"),
    (b"name\nx\n", "MISSING_QUESTION_COLUMN"),
    (b"QUESTION\nq1\nq2\nq3\n", "TOO_MANY_ROWS"),
    (b"QUESTION,ticket\nq1,1,extra\n", "ROW_HAS_EXTRA_CELLS"),
])
def test_a_scan_refuses_what_a_one_piece_parse_refuses(data, code):
    from lib.errors import AppError

    with pytest.raises(AppError) as scanned:
        scan_upload(data, "f.csv", max_rows=2)
    with pytest.raises(AppError) as parsed:
        parse_upload(data, "f.csv", max_rows=2)
    assert scanned.value.code == parsed.value.code == code


def row(n: int, label: str | None) -> tuple[int, ParsedRow]:
    return n, ParsedRow(row_number=n + 2, question=f"q{n}", chat_label=label, referring_url=None, original={})


def test_chunks_hold_whole_conversations_and_end_where_the_next_conversation_begins():
    window = {0: [row(0, "a"), row(3, "a"), row(9, "a")], 1: [row(1, None)], 2: [row(2, "b"), row(4, "b")],
              5: [row(5, None)]}

    chunks = chunks_of(window, end=6, size=3)

    assert [(upto, [n for n, _ in rows]) for upto, rows in chunks] == [(1, [0, 3, 9]), (5, [1, 2, 4]), (6, [5])]


def test_an_empty_window_still_moves_the_mark_to_its_end():
    assert chunks_of({}, end=25, size=10) == [(25, [])]


def test_rows_get_their_place_in_the_file_and_chat_ids_that_do_not_depend_on_the_chunk():
    salt = bytes(32)
    docs = [{"rowIndex": 0, "chatLabel": "a", "chatKey": "label:a", "chatId": "random1"},
            {"rowIndex": 1, "chatLabel": None, "chatKey": "row:1", "chatId": "random2"}]

    place(docs, [40, 57], salt)

    assert [(d["rowIndex"], d["chatKey"]) for d in docs] == [(40, "label:a"), (57, "row:57")]
    assert docs[0]["chatId"] == conversation_chat_id(salt, "label:a") != conversation_chat_id(bytes(31) + b"x", "label:a")
    assert docs[1]["chatId"] == conversation_chat_id(salt, "row:57")
    assert len(docs[0]["chatId"]) == 32 and conversation_chat_id(salt, "label:a", 1) != docs[0]["chatId"]
