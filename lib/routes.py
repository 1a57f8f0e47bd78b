"""Route handlers: parse the request, call one service, shape the answer.

Each `Endpoint` here is what an `api/` file exposes as `app`.
"""

from __future__ import annotations

import hmac

from werkzeug.wrappers import Response

from lib.auth import BATCH_ROLES, authenticate, require_role
from lib.batch_files import export_chunks
from lib.deletion import BatchDeletion
from lib.errors import BadRequest, Unauthorized
from lib.export import content_disposition
from lib.http import Call, Endpoint, iter_body, json_response, parse_json_object
from lib.models import User
from lib.queue import SIGNATURE_HEADER, parse_step_message, verify_signature
from lib.results_page import ResultsPages, parse_page_query, wants_page
from lib.services import get_services
from lib.store.removal import BatchRemovalStore
from lib.store.result_pages import ResultPageStore
from lib.sweep import sweep
from lib.upload import parse_form

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _max_body() -> int:
    return get_services().settings.max_body_bytes


def _signed_in(call: Call) -> User:
    services = get_services()
    return authenticate(call.bearer_token(), services.settings.jwt_secret, services.users.get)


def _batch_user(call: Call) -> User:
    return require_role(_signed_in(call), BATCH_ROLES)


# --- chat ---------------------------------------------------------------------------


def chat_message_handler(call: Call) -> Response:
    body = call.json_body()
    for name in ("message", "lang", "aiProvider", "searchProvider"):
        if name in body and not isinstance(body[name], str):
            raise BadRequest(f"{name} must be a string.", code="INVALID_FIELD", details={"field": name})
    chat_id = body.get("chatId")
    if chat_id is not None and (not isinstance(chat_id, str) or not 1 <= len(chat_id) <= 100):
        raise BadRequest("chatId must be a string of 1 to 100 characters.", code="INVALID_FIELD",
                         details={"field": "chatId"})
    referring_url = body.get("referringUrl")
    if referring_url is not None and not isinstance(referring_url, str):
        raise BadRequest("referringUrl must be a string.", code="INVALID_FIELD", details={"field": "referringUrl"})
    services = get_services()
    settings = services.settings
    result = services.chat.process_message(
        chat_id=chat_id,
        user_message=body.get("message", ""),
        lang=body.get("lang", ""),
        selected_ai=body.get("aiProvider") or settings.default_ai_provider,
        selected_search=body.get("searchProvider") or settings.default_search_provider,
        referring_url=referring_url,
        user=call.user,
        override_user_id=call.user.id if body.get("applyOverrides") is True else None,
    )
    return json_response({**result.fields, "chatId": result.chat_id, "interactionId": result.interaction_id,
                          "answer": result.answer, "citationUrl": result.citation_url,
                          "responseTimeMs": result.response_time_ms})


chat_message = Endpoint(chat_message_handler, methods=["POST"], authenticate=_batch_user, max_body_bytes=_max_body)


# --- batches ------------------------------------------------------------------------


def create_batch_handler(call: Call) -> Response:
    call.check_length()  # 413 before a byte of an oversized body is read
    form = parse_form(call.request.headers.get("Content-Type"), iter_body(call.request, call.max_body_bytes))
    result = get_services().batches.create(call.user, form)
    call.log_fields["batch"] = result["batchId"]
    return json_response(result, status=202)


def batch_status_handler(call: Call) -> Response:
    return json_response(get_services().batches.status(call.user, call.query("batchId")))


def batch_list_handler(call: Call) -> Response:
    return json_response(get_services().batches.list(call.user))


def batch_options_handler(call: Call) -> Response:
    return json_response(get_services().batches.options())


def batch_results_handler(call: Call) -> Response:
    fmt = (call.query("format") or "json").lower()
    if fmt not in ("json", "csv", "xlsx"):
        raise BadRequest("format must be json, csv or xlsx.", code="INVALID_FORMAT", details={"field": "format"})
    delivery = call.query("delivery")
    if delivery not in (None, "url"):
        raise BadRequest("delivery must be url (or left out).", code="INVALID_DELIVERY", details={"field": "delivery"})
    if delivery == "url":  # {url, expiresAt}: a short-lived link to the export in object storage
        return json_response(get_services().batches.results_link(call.user, call.query("batchId"), fmt))
    if fmt == "json" and wants_page(call.request.args):  # one page of the table (lib/results_page.py)
        services = get_services()
        query = parse_page_query(call.request.args)
        batch = services.batches.owned(call.user, call.query("batchId"))
        return json_response(ResultsPages(ResultPageStore(services.store)).page(batch, query))
    batch, columns, rows = get_services().batches.results(call.user, call.query("batchId"))
    if fmt == "json":
        return json_response({"batchId": batch.id, "status": batch.status.value, "columns": columns,
                              "items": list(rows)})
    headers = {"Content-Disposition": content_disposition(batch.name, fmt), "Cache-Control": "no-store"}
    return Response(export_chunks(fmt, batch, columns, rows), mimetype="text/csv" if fmt == "csv" else XLSX_MIMETYPE,
                    headers=headers)


def cancel_batch_handler(call: Call) -> Response:
    batch_id = call.query("batchId")
    raw = b"" if batch_id is not None else call.read_body()  # chunked bodies have no Content-Length
    if raw.strip():
        body = parse_json_object(raw, code="INVALID_JSON")
        batch_id = body.get("batchId")
        if batch_id is not None and not isinstance(batch_id, str):
            raise BadRequest("batchId must be a string.", code="INVALID_BATCH_ID", details={"field": "batchId"})
    return json_response(get_services().batches.cancel(call.user, batch_id))


def delete_batch_handler(call: Call) -> Response:
    """Delete a finished batch and all it made: 200 when gone, 202 when the caller must ask again."""
    body = call.json_body()
    batch_id = body.get("batchId")
    if batch_id is not None and not isinstance(batch_id, str):
        raise BadRequest("batchId must be a string.", code="INVALID_BATCH_ID", details={"field": "batchId"})
    services = get_services()
    deletion = BatchDeletion(services.batches, BatchRemovalStore(services.store), services.files, services.now)
    answer, done = deletion.delete(call.user, batch_id)
    call.log_fields.update(batch=answer["batchId"], deleted=answer["deletedItems"])
    return json_response(answer, status=200 if done else 202)


def batch_summary_handler(call: Call) -> Response:
    """Counts, pass rates, latency, tokens, cost, stability and baseline drift of a batch (lib/summary.py)."""
    return json_response(get_services().batches.evaluation_summary(call.user, call.query("batchId")))


def batch_compare_handler(call: Call) -> Response:
    """A batch's rows beside a baseline's, as JSON, CSV or XLSX."""
    fmt = (call.query("format") or "json").lower()
    if fmt not in ("json", "csv", "xlsx"):
        raise BadRequest("format must be json, csv or xlsx.", code="INVALID_FORMAT", details={"field": "format"})
    batch, columns, rows = get_services().batches.compare(call.user, call.query("batchId"),
                                                          call.query("baselineBatchId"))
    if fmt == "json":
        return json_response({"batchId": batch.id, "baselineBatchId": call.query("baselineBatchId")
                              or batch.baseline_batch_id, "columns": columns, "items": rows})
    headers = {"Content-Disposition": content_disposition(f"{batch.name} compared", fmt), "Cache-Control": "no-store"}
    return Response(export_chunks(fmt, batch, columns, rows), mimetype="text/csv" if fmt == "csv" else XLSX_MIMETYPE,
                    headers=headers)


def retry_batch_handler(call: Call) -> Response:
    """Run a final batch's failed (or cancelled) rows again, in place."""
    return json_response(get_services().batches.retry(call.user, call.json_body()))


def upload_url_handler(call: Call) -> Response:
    """A presigned form post straight to object storage, for a file past the request cap."""
    return json_response(get_services().batches.upload_url(call.user, call.json_body()))


def batch_source_handler(call: Call) -> Response:
    """A short-lived link to the file as it was uploaded."""
    return json_response(get_services().batches.source(call.user, call.query("batchId")))


create_batch = Endpoint(create_batch_handler, methods=["POST"], authenticate=_batch_user, max_body_bytes=_max_body)
batch_status = Endpoint(batch_status_handler, methods=["GET"], authenticate=_batch_user, max_body_bytes=_max_body)
batch_list = Endpoint(batch_list_handler, methods=["GET"], authenticate=_batch_user, max_body_bytes=_max_body)
batch_options = Endpoint(batch_options_handler, methods=["GET"], authenticate=_batch_user, max_body_bytes=_max_body)
batch_results = Endpoint(batch_results_handler, methods=["GET"], authenticate=_batch_user, max_body_bytes=_max_body)
cancel_batch = Endpoint(cancel_batch_handler, methods=["POST"], authenticate=_batch_user, max_body_bytes=_max_body)
upload_url = Endpoint(upload_url_handler, methods=["POST"], authenticate=_batch_user, max_body_bytes=lambda: 16 * 1024)
batch_source = Endpoint(batch_source_handler, methods=["GET"], authenticate=_batch_user, max_body_bytes=_max_body)
batch_summary = Endpoint(batch_summary_handler, methods=["GET"], authenticate=_batch_user, max_body_bytes=_max_body)
batch_compare = Endpoint(batch_compare_handler, methods=["GET"], authenticate=_batch_user, max_body_bytes=_max_body)
retry_batch = Endpoint(retry_batch_handler, methods=["POST"], authenticate=_batch_user,
                       max_body_bytes=lambda: 16 * 1024)
delete_batch = Endpoint(delete_batch_handler, methods=["POST"], authenticate=_batch_user,
                        max_body_bytes=lambda: 16 * 1024)


# --- queue and cron -----------------------------------------------------------------


def process_step_handler(call: Call) -> Response:
    services = get_services()
    settings = services.settings
    raw = call.read_body()
    verify_signature(
        call.request.headers.get(SIGNATURE_HEADER),
        raw,
        settings.process_step_url,
        (settings.qstash_current_signing_key, settings.qstash_next_signing_key),
    )
    payload = parse_json_object(raw, code="INVALID_STEP_MESSAGE")
    message = parse_step_message(payload)
    retried = call.request.headers.get("Upstash-Retried", "0")  # not signed: only digits reach the log
    call.log_fields.update(batch=message.batch_id, retried=retried if retried.isascii() and retried.isdigit() else "?")
    outcome = services.engine.run_step(message)
    call.log_fields.update(action=outcome.action, seq=outcome.seq, ok=outcome.rows_succeeded,
                           failed=outcome.rows_failed)
    return json_response({"batchId": outcome.batch_id, "action": outcome.action, "seq": outcome.seq,
                          "rowsSucceeded": outcome.rows_succeeded, "rowsFailed": outcome.rows_failed,
                          "rowsRetryLater": outcome.rows_retry_later})


def sweep_handler(call: Call) -> Response:
    services = get_services()
    secret = services.settings.cron_secret
    token = call.bearer_token()
    if not secret or not hmac.compare_digest(token.encode(), secret.encode()):
        raise Unauthorized("The cron secret is not valid.", code="INVALID_CRON_SECRET")
    return json_response(sweep(services))


process_step = Endpoint(process_step_handler, methods=["POST"], max_body_bytes=lambda: 64 * 1024)
sweep_batches = Endpoint(sweep_handler, methods=["GET"], max_body_bytes=lambda: 1024)
