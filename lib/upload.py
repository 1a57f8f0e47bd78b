"""multipart/form-data uploads, parsed as a stream (python-multipart) under a hard size cap."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from lib.errors import BadRequest, UnsupportedMediaType

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 50


@dataclass
class UploadedForm:
    fields: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None
    file_data: bytes | None = None


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary of the Content-Type; 415 for anything that is not multipart."""
    mimetype, options = parse_options_header(content_type or "")
    if mimetype != b"multipart/form-data":
        raise UnsupportedMediaType(
            "Upload the file as multipart/form-data.", code="UNSUPPORTED_CONTENT_TYPE",
            details={"expected": "multipart/form-data"},
        )
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise BadRequest("The multipart Content-Type has no valid boundary.", code="MALFORMED_MULTIPART")
    return boundary


def parse_form(content_type: str | None, chunks: Iterable[bytes], file_field: str = "file") -> UploadedForm:
    """Read the form's text fields and its one file. Raises `BadRequest` for a malformed body."""
    boundary = boundary_of(content_type)
    form = UploadedForm()
    state: dict[str, object] = {"part": None, "header_field": b"", "header_value": b"", "parts": 0, "ended": False}

    def on_part_begin() -> None:
        state["parts"] = int(state["parts"]) + 1  # type: ignore[call-overload]
        if int(state["parts"]) > MAX_PARTS:  # type: ignore[call-overload]
            raise BadRequest("The form has too many parts.", code="MALFORMED_MULTIPART")
        state["part"] = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header_field"] = bytes(state["header_field"]) + data[start:end]  # type: ignore[arg-type]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["header_value"] = bytes(state["header_value"]) + data[start:end]  # type: ignore[arg-type]

    def on_header_end() -> None:
        part: _Part = state["part"]  # type: ignore[assignment]
        part.headers[bytes(state["header_field"]).lower()] = bytes(state["header_value"])  # type: ignore[arg-type]
        state["header_field"], state["header_value"] = b"", b""

    def on_headers_finished() -> None:
        part: _Part = state["part"]  # type: ignore[assignment]
        disposition, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            raise BadRequest("A form part has no name.", code="MALFORMED_MULTIPART")
        part.name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            part.filename = options[b"filename"].decode("utf-8", "replace")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part: _Part = state["part"]  # type: ignore[assignment]
        part.size += end - start
        if part.filename is None and part.size > MAX_FIELD_BYTES:
            raise BadRequest(f"The form field {part.name!r} is too long.", code="FIELD_TOO_LONG",
                             details={"field": part.name})
        part.chunks.append(data[start:end])

    def on_part_end() -> None:
        part: _Part = state["part"]  # type: ignore[assignment]
        data = b"".join(part.chunks)
        if part.name == file_field and part.filename is not None:
            if form.file_data is not None:
                raise BadRequest("Send exactly one file.", code="TOO_MANY_FILES", details={"field": file_field})
            form.file_name, form.file_data = part.filename, data
        elif part.name not in form.fields:
            try:
                form.fields[part.name] = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(f"The form field {part.name!r} is not UTF-8 text.", code="INVALID_FIELD",
                                 details={"field": part.name}) from exc

    def on_end() -> None:
        state["ended"] = True

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_end": on_end,
        },
    )
    try:
        for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequest("The multipart body is malformed.", code="MALFORMED_MULTIPART") from exc
    if not state["ended"]:
        raise BadRequest("The multipart body ended early (no closing boundary).", code="MALFORMED_MULTIPART")
    return form
