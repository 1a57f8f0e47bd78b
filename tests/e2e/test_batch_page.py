"""The batch page in a real browser against the full local stack.

The `stack` and `output_dir` fixtures come from tests/e2e/conftest.py: the stack serves
ui/dist at `/` and the API at `/api/...`, with the offline AI provider slowed to about
1.5 s per answer and a batch concurrency of 4, so a batch stays visibly in progress for
a few seconds. Every page fails the test on a console error or an uncaught page error.
Screenshots of the main states are saved under `output_dir`.

Each state is also checked with axe-core (ui/node_modules/axe-core, a pinned dev
dependency of the UI), which must find no violation. axe is injected as a script tag,
which the page's Content-Security-Policy (`script-src 'self'`) would refuse, so those
contexts bypass the CSP; one test opens the page with its CSP enforced.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import APIRequestContext, Browser, Locator, Page, Playwright, expect

from tests.support.browser import DESKTOP, PHONE, check_axe

ORIGINAL_COLUMNS = ["chatId", "REDACTEDQUESTION", "URL", "ticket"]
RESULT_COLUMNS = ["status", "answer", "citationUrl", "error", "interactionId", "responseTimeMs"]
RUN_TIMEOUT_MS = 120_000  # a 10-row batch takes seconds; leave room for a slow machine
UPLOAD_TIMEOUT_MS = 60_000  # writing a thousand rows takes a few seconds on a busy machine


@pytest.fixture(scope="module")
def api(pw: Playwright, stack) -> Iterator[APIRequestContext]:
    """Playwright's HTTP client, to set up and check data behind the page's back."""
    context = pw.request.new_context(base_url=stack.base_url)
    yield context
    context.dispose()


@contextmanager
def open_page(browser: Browser, *, viewport: dict | None = None, enforce_csp: bool = False) -> Iterator[Page]:
    """A page in a fresh context that fails the test on any console error or page error.

    The CSP is bypassed unless `enforce_csp`, so that axe can be injected (`check_axe`).
    """
    context = browser.new_context(
        accept_downloads=True,
        viewport=viewport or DESKTOP,
        locale="en-CA",
        bypass_csp=not enforce_csp,
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on(
        "console",
        lambda message: problems.append(f"console error: {message.text}") if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    try:
        yield page
    finally:
        context.close()
    assert problems == [], problems


def page_width(page: Page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def sign_in(page: Page, stack, user: str) -> None:
    """Signs in through the `#token=` link and checks the token left the address bar."""
    page.goto(stack.signin_url(user))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert "token=" not in page.url
    assert page.evaluate("() => Object.values(sessionStorage)") == [stack.tokens[user]]
    expect(page.get_by_role("heading", name="Your batches")).to_be_visible()


def upload(page: Page, file: Path, name: str) -> str:
    """Uploads a sample through the form; returns the new batch id shown by the page."""
    page.get_by_label("Spreadsheet of questions").set_input_files(file)
    page.get_by_label("Batch name").fill(name)
    page.get_by_role("button", name="Upload and start").click()
    expect(page.get_by_test_id("upload-success")).to_be_visible(timeout=UPLOAD_TIMEOUT_MS)
    batch_id = page.get_by_test_id("upload-batch-id").inner_text().strip()
    assert batch_id
    return batch_id


def create_behind_the_page(api: APIRequestContext, token: str, sample: Path, name: str) -> str:
    """Creates a batch through the API (not the page); returns its id."""
    created = api.post(
        "/api/batch/create",
        headers={"Authorization": f"Bearer {token}"},
        multipart={
            "file": {"name": sample.name, "mimeType": "text/csv", "buffer": sample.read_bytes()},
            "batchName": name,
            "aiProvider": "offline",
            "searchProvider": "offline",
            "lang": "en",
            "applyOverrides": "false",
        },
    )
    assert created.status == 202, created.text()
    return created.json()["batchId"]


def batch_status(api: APIRequestContext, token: str, batch_id: str) -> dict:
    answer = api.get(f"/api/batch/status?batchId={batch_id}", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200, answer.text()
    return answer.json()


def wait_until_final(api: APIRequestContext, token: str, batch_id: str) -> dict:
    """The batch's status once it is final (polled through the API)."""
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while True:
        status = batch_status(api, token, batch_id)
        if status["status"] in ("processed", "completed_with_errors", "cancelled", "failed"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.5)


def batch_row(page: Page, batch_id: str) -> Locator:
    return page.get_by_test_id(f"batch-row-{batch_id}")


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def unique(label: str) -> str:
    return f"e2e {label} {uuid.uuid4().hex[:6]}"


def test_a_visitor_without_a_token_is_asked_to_sign_in(browser, stack, output_dir):
    with open_page(browser) as page:
        page.goto(stack.base_url)

        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_label("Access token")).to_be_visible()
        expect(page.get_by_role("heading", name="New batch")).to_have_count(0)
        page.screenshot(path=output_dir / "batch-page-01-signed-out.png", full_page=True)
        check_axe(page, "signed out")

        # A token pasted into the field signs in too, and "Sign out" returns here.
        page.get_by_label("Access token").fill(stack.tokens["partner"])
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Your batches")).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        assert page.evaluate("() => sessionStorage.length") == 0


def test_a_partner_uploads_a_file_follows_it_to_the_end_and_downloads_the_answers(browser, stack, api, output_dir):
    sample = stack.samples_dir / "conversations.csv"
    options = api.get("/api/batch/options", headers={"Authorization": f"Bearer {stack.tokens['partner']}"}).json()
    with open_page(browser) as page:
        api_calls: list = []
        page.on("request", lambda request: api_calls.append(request) if "/api/" in request.url else None)
        sign_in(page, stack, "partner")
        # The form offers what this deployment configured, at its default concurrency, by name.
        expect(page.get_by_label("Rows at once")).to_have_value(str(options["defaults"]["concurrency"]))
        ai_options = page.get_by_label("AI provider").locator("option")
        assert [option.get_attribute("value") for option in ai_options.all()] == options["aiProviders"]
        search_options = page.get_by_label("Search provider").locator("option")
        assert [option.get_attribute("value") for option in search_options.all()] == options["searchProviders"]
        assert "Offline (no network)" in ai_options.all_inner_texts()
        assert "offline" not in ai_options.all_inner_texts()
        # No question-language menu: the page language is sent, and the form says so.
        expect(page.get_by_test_id("upload-lang-note")).to_have_text(
            "Answers default to the page language: English; each question’s own language is detected."
        )
        page.get_by_label("Spreadsheet of questions").set_input_files(sample)
        page.screenshot(path=output_dir / "batch-page-02-upload-form.png", full_page=True)
        check_axe(page, "upload form")

        batch_id = upload(page, sample, unique("conversations"))
        assert batch_status(api, stack.tokens["partner"], batch_id)["pageLanguage"] == "en"
        row = batch_row(page, batch_id)
        progress = row.get_by_role("progressbar")

        # The success message takes the reader to the new batch's card, and can be dismissed.
        page.get_by_role("link", name="Go to the batch in the list").click()
        expect(row.get_by_role("heading", level=3)).to_be_focused()
        page.get_by_role("button", name="Dismiss the message about the new batch").click()
        expect(page.get_by_test_id("upload-success")).to_have_count(0)

        # In progress: one bar in segments, a legend with counts, and a time estimate.
        expect(row).to_have_attribute("data-status", "processing", timeout=RUN_TIMEOUT_MS)
        expect(progress).to_have_attribute("aria-valuemax", "100")
        expect(progress).to_have_attribute(
            "aria-valuetext", re.compile(r"^\d+ answered, \d+ blocked, \d+ failed, 0 cancelled of 10$")
        )
        expect(row.get_by_test_id("batch-eta")).to_be_visible()
        expect(row.get_by_test_id("batch-counts")).to_contain_text("Total: 10")
        expect(row.get_by_role("button", name="Cancel batch")).to_be_visible()
        page.screenshot(path=output_dir / "batch-page-03-in-progress.png", full_page=True)
        check_axe(page, "in progress")

        # Finished: 100 %, every row answered, a duration, no cancel any more.
        expect(progress).to_have_attribute("aria-valuenow", "100", timeout=RUN_TIMEOUT_MS)
        expect(row).to_have_attribute("data-status", "processed", timeout=RUN_TIMEOUT_MS)
        expect(row.get_by_test_id("batch-status")).to_have_text("Finished")
        expect(row.get_by_test_id("batch-percent")).to_contain_text("10 of 10")
        expect(row.get_by_test_id("legend-answered")).to_have_text("Answered: 10")
        expect(progress).to_have_attribute("aria-valuetext", "10 answered, 0 blocked, 0 failed, 0 cancelled of 10")
        expect(row.get_by_test_id("batch-duration")).to_have_text(re.compile(r"Duration: .*\d+ (s|min|h)"))
        expect(row.get_by_role("button", name="Cancel batch")).to_have_count(0)
        expect(page.get_by_test_id("live-region")).to_contain_text("Finished, 100% complete")
        page.screenshot(path=output_dir / "batch-page-04-finished.png", full_page=True)
        check_axe(page, "finished")

        # The CSV comes back in input order, original columns first, then the answers.
        with page.expect_download() as download_info:
            row.get_by_role("button", name="Download CSV").click()
        download = download_info.value
        assert download.suggested_filename.endswith(".csv")
        saved = output_dir / f"batch-page-results-{batch_id}.csv"
        download.save_as(saved)

        with page.expect_download() as download_info:
            row.get_by_role("button", name="Download Excel").click()
        workbook = download_info.value
        assert workbook.suggested_filename.endswith(".xlsx")
        assert Path(workbook.path()).read_bytes()[:2] == b"PK"  # an XLSX is a zip

        with page.expect_download() as download_info:
            row.get_by_role("button", name="Download JSON").click()
        exported = download_info.value
        assert exported.suggested_filename.endswith(".json")
        results = json.loads(Path(exported.path()).read_text(encoding="utf-8"))
        assert results["batchId"] == batch_id
        assert len(results["items"]) == 10

        # The results table shows every row in order, with the Details and Row columns first.
        row.get_by_role("button", name="View results").click()
        table = row.get_by_role("table")
        expect(table.locator("tbody tr")).to_have_count(10)
        expect(table.locator("tbody tr[data-status='succeeded']")).to_have_count(10)
        expect(table.locator("thead")).to_contain_text("Answer")
        headers = [re.sub(r"[↕▲▼\s]+$", "", text) for text in table.locator("thead th").all_inner_texts()]
        assert headers[:2] == ["Details", "Row"], headers
        first_row = table.locator("tbody tr").first
        expect(first_row.locator("td").nth(headers.index("Answer"))).not_to_have_text("")
        expect(first_row.locator("td").nth(headers.index("Status"))).to_have_text("Answered")
        row.get_by_role("table").scroll_into_view_if_needed()
        page.screenshot(path=output_dir / "batch-page-05-results-table.png", full_page=True)
        check_axe(page, "results open")

        # A row opens in full, with the other turns of its conversation.
        row.get_by_role("button", name=re.compile(r"^Show row \d+ in full$")).first.click()
        detail = row.get_by_test_id("result-detail")
        expect(detail.get_by_test_id("result-detail-answer")).not_to_have_text("")
        # Row 2 is the first turn of conversation c1, whose second turn is row 4.
        expect(detail.get_by_test_id("result-conversation")).to_contain_text("Conversation c1:")
        expect(detail.get_by_test_id("result-conversation").get_by_role("listitem")).to_have_count(
            len([line for line in sample.read_text(encoding="utf-8-sig").splitlines() if line.startswith("c1,")])
        )
        row.get_by_role("button", name="Choose columns", exact=False).click()
        expect(row.get_by_role("group", name="Columns of your file")).to_contain_text("ticket")
        page.screenshot(path=output_dir / "batch-page-05b-results-row-open.png", full_page=True)
        check_axe(page, "results with a row open and the column picker")

        # Every API call carried the bearer token, and none put it in a URL.
        token = stack.tokens["partner"]
        assert api_calls, "the page made no API call"
        for request in api_calls:
            assert request.all_headers().get("authorization") == f"Bearer {token}", request.url
            assert token not in request.url

    # Last, the CSV downloaded above: input order, original columns first, then the answers.
    check_results_csv(saved.read_bytes().decode("utf-8-sig"), sample.read_text(encoding="utf-8-sig"))


def check_results_csv(downloaded: str, original: str) -> None:
    """The downloaded rows match the input row by row; the answer columns are filled."""
    sent = read_csv(original)
    got = read_csv(downloaded)
    if got[0][0] == "rowNumber":  # the row's line in the uploaded sheet (header = 1) comes first
        assert [row[0] for row in got[1:]] == [str(n) for n in range(2, len(got) + 1)], got
        got = [row[1:] for row in got]
    header, rows = got[0], got[1:]
    assert sent[0] == ORIGINAL_COLUMNS
    assert header[: len(ORIGINAL_COLUMNS)] == ORIGINAL_COLUMNS, header
    answer_columns = header[len(ORIGINAL_COLUMNS) :]
    for column in RESULT_COLUMNS:
        assert column in answer_columns, (column, header)
    index = {column: len(ORIGINAL_COLUMNS) + answer_columns.index(column) for column in RESULT_COLUMNS}
    # `chatId` is both an original column and a result column: when the server repeats
    # it after the original columns, the repeated label must be the row's own.
    repeated_chat_id = len(ORIGINAL_COLUMNS) + answer_columns.index("chatId") if "chatId" in answer_columns else None

    assert len(rows) == len(sent) - 1
    for number, (expected, actual) in enumerate(zip(sent[1:], rows), start=1):
        assert actual[: len(ORIGINAL_COLUMNS)] == expected, f"row {number} out of order or altered"
        assert actual[index["status"]] == "succeeded", (number, actual)
        # The masked question: `redactedQuestion`, or the file's REDACTEDQUESTION column itself
        # (a server that does not repeat the same masked text).
        question = (
            answer_columns.index("redactedQuestion") + len(ORIGINAL_COLUMNS)
            if "redactedQuestion" in answer_columns
            else 1
        )
        assert actual[question].strip(), (number, actual)
        assert actual[index["answer"]].strip(), (number, actual)
        assert actual[index["interactionId"]].strip(), (number, actual)
        assert actual[index["error"]] == "", (number, actual)
        if repeated_chat_id is not None and expected[0]:
            assert actual[repeated_chat_id] == expected[0], (number, actual)


def many_questions(folder: Path, sample: Path, rows: int) -> Path:
    """A CSV of `rows` questions made from a sample's, so that a batch runs long enough to cancel
    whatever the provider's speed."""
    header, *questions = read_csv(sample.read_text(encoding="utf-8-sig"))
    column = header.index("REDACTEDQUESTION") if "REDACTEDQUESTION" in header else 0
    path = folder / "many-questions.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["REDACTEDQUESTION"])
        for n in range(rows):
            writer.writerow([f"{questions[n % len(questions)][column]} ({n + 1})"])
    return path


CANCEL_ROWS = 1000


def test_a_partner_cancels_a_running_batch_through_the_confirmation_dialog(browser, stack, output_dir, tmp_path):
    with open_page(browser) as page:
        sign_in(page, stack, "partner")
        sample = many_questions(tmp_path, stack.samples_dir / "questions-en.csv", CANCEL_ROWS)
        batch_id = upload(page, sample, unique("to cancel"))
        row = batch_row(page, batch_id)
        cancel = row.get_by_role("button", name="Cancel batch")
        expect(cancel).to_be_visible()

        # Keyboard only: Enter opens the dialog on the safe choice, Escape closes it.
        cancel.focus()
        page.keyboard.press("Enter")
        dialog = page.get_by_role("alertdialog", name="Cancel this batch?")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_role("button", name="No, keep it running")).to_be_focused()
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
        expect(cancel).to_be_focused()
        expect(row).not_to_have_attribute("data-status", "cancelled")

        # Then confirm: Enter opens it, Tab reaches "Yes", Enter cancels.
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        page.screenshot(path=output_dir / "batch-page-06-cancel-confirmation.png")
        check_axe(page, "cancel dialog")
        page.keyboard.press("Tab")
        expect(dialog.get_by_role("button", name="Yes, cancel the batch")).to_be_focused()
        page.keyboard.press("Enter")

        expect(dialog).to_have_count(0)
        # Cancelling (rows in flight finish) offers no cancel; then the batch is cancelled.
        expect(row).to_have_attribute("data-status", re.compile(r"^cancell(ing|ed)$"))
        expect(row.get_by_role("button", name="Cancel batch")).to_have_count(0)
        expect(row).to_have_attribute("data-status", "cancelled", timeout=RUN_TIMEOUT_MS)
        expect(row.get_by_test_id("batch-status")).to_have_text("Cancelled")
        # Rows that were in flight finish and are counted; the others are cancelled: the bar
        # is full, but the batch reads as cancelled with its answered rows, never as done.
        progress = row.get_by_role("progressbar")
        expect(progress).to_have_attribute("aria-valuenow", "100", timeout=RUN_TIMEOUT_MS)
        total = f"{CANCEL_ROWS:,}"
        expect(row.get_by_test_id("batch-percent")).to_have_text(
            re.compile(rf"^Cancelled: [\d,]+ of {total} answered$")
        )
        expect(progress).to_have_attribute(
            "aria-valuetext",
            re.compile(rf"^[\d,]+ answered, [\d,]+ blocked, [\d,]+ failed, [1-9][\d,]* cancelled of {total}$"),
        )
        counts = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", progress.get_attribute("aria-valuetext"))]
        assert sum(counts[:4]) == counts[4] == CANCEL_ROWS, counts
        expect(row.get_by_test_id("batch-percent")).not_to_contain_text("100%")
        # Stays cancelled after a fresh read of the list.
        page.get_by_role("button", name="Refresh list").click()
        expect(row).to_have_attribute("data-status", "cancelled")
        page.screenshot(path=output_dir / "batch-page-07-cancelled.png", full_page=True)
        check_axe(page, "cancelled")


def test_the_page_switches_to_french(browser, stack, api, output_dir):
    with open_page(browser) as page:
        sign_in(page, stack, "partner")
        page.get_by_role("button", name="Afficher cette page en français").click()

        expect(page.locator("html")).to_have_attribute("lang", "fr")
        expect(page.get_by_role("heading", level=1)).to_have_text("Réponses IA — Traitement par lots")
        expect(page.get_by_role("heading", name="Nouveau lot")).to_be_visible()
        expect(page.get_by_role("heading", name="Vos lots")).to_be_visible()
        expect(page.get_by_label("Nom du lot")).to_be_visible()
        expect(page.get_by_label("Fournisseur d’IA")).to_be_visible()
        expect(page.get_by_role("button", name="Téléverser et lancer")).to_be_visible()
        expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()
        expect(page.get_by_test_id("upload-lang-note")).to_have_text(
            "Les réponses sont par défaut dans la langue de la page : français; "
            "la langue de chaque question est détectée."
        )
        # An upload made on the French page is sent with lang=fr (the page language).
        page.get_by_label("Tableur de questions").set_input_files(stack.samples_dir / "questions-fr.csv")
        page.get_by_label("Nom du lot").fill(unique("français"))
        page.get_by_role("button", name="Téléverser et lancer").click()
        expect(page.get_by_test_id("upload-success")).to_contain_text("lignes en file d’attente")
        french_id = page.get_by_test_id("upload-batch-id").inner_text().strip()
        assert batch_status(api, stack.tokens["partner"], french_id)["pageLanguage"] == "fr"
        rows = page.locator("[data-testid^='batch-row-']")
        expect(rows.first.get_by_role("button", name="Télécharger CSV")).to_be_visible()
        expect(rows.first.get_by_test_id("batch-ai-provider")).to_have_text("Hors ligne (sans réseau)")
        page.screenshot(path=output_dir / "batch-page-08-french.png", full_page=True)
        check_axe(page, "French")

        page.get_by_role("button", name="Display this page in English").click()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.get_by_role("heading", name="New batch")).to_be_visible()


def test_another_partner_sees_none_of_the_first_partners_batches(browser, stack, api, output_dir):
    # Given partner has at least one batch (created behind the page's back)...
    sample = stack.samples_dir / "questions-en.csv"
    created = api.post(
        "/api/batch/create",
        headers={"Authorization": f"Bearer {stack.tokens['partner']}"},
        multipart={
            "file": {"name": sample.name, "mimeType": "text/csv", "buffer": sample.read_bytes()},
            "batchName": unique("partner only"),
            "aiProvider": "offline",
            "searchProvider": "offline",
            "lang": "en",
            "applyOverrides": "false",
        },
    )
    assert created.status == 202, created.text()
    partner_ids = {batch["batchId"] for batch in list_batches(api, stack.tokens["partner"])}
    partner2_ids = {batch["batchId"] for batch in list_batches(api, stack.tokens["partner2"])}
    assert created.json()["batchId"] in partner_ids

    # ...partner2's page lists exactly partner2's own batches.
    with open_page(browser) as page:
        sign_in(page, stack, "partner2")
        list_section = page.get_by_test_id("batch-list")
        if partner2_ids:
            expect(page.locator("[data-testid^='batch-row-']")).to_have_count(len(partner2_ids))
        else:
            expect(page.get_by_test_id("batch-list-empty")).to_be_visible()
        for batch_id in partner_ids:
            expect(batch_row(page, batch_id)).to_have_count(0)
        expect(list_section).to_be_visible()
        page.screenshot(path=output_dir / "batch-page-09-partner2-list.png", full_page=True)


def list_batches(api: APIRequestContext, token: str) -> list[dict]:
    answer = api.get("/api/batch/list", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200, answer.text()
    return answer.json()


def test_on_a_phone_the_page_never_scrolls_sideways(browser, stack, api, output_dir):
    token = stack.tokens["partner"]
    batch_id = create_behind_the_page(api, token, stack.samples_dir / "conversations.csv", unique("phone"))
    wait_until_final(api, token, batch_id)
    with open_page(browser, viewport=PHONE) as page:
        sign_in(page, stack, "partner")
        assert page_width(page) <= PHONE["width"], "the signed-in page scrolls sideways"
        page.get_by_label("Search by name").fill(batch_id)
        row = batch_row(page, batch_id)
        expect(row).to_have_attribute("data-status", re.compile(r"^(processed|completed_with_errors)$"))
        # Every action of the card is on screen: the buttons wrap instead of being cut off.
        for button in row.locator(".batch__actions button").all():
            box = button.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box

        row.get_by_role("button", name="View results").click()
        table = row.get_by_role("table")
        expect(table.locator("tbody tr")).to_have_count(10)
        assert page_width(page) <= PHONE["width"], "opening the results widens the page"
        # The table scrolls inside its own box instead.
        scroller = row.get_by_test_id("results-scroll")
        assert scroller.evaluate("(box) => box.scrollWidth > box.clientWidth"), "the table should scroll in its box"
        page.screenshot(path=output_dir / "batch-page-10-phone-results.png", full_page=True)
        check_axe(page, "phone, results open")

        row.get_by_role("button", name=re.compile(r"^Show row \d+ in full$")).first.click()
        row.get_by_role("button", name="Choose columns", exact=False).click()
        expect(row.get_by_test_id("result-detail")).to_be_visible()
        assert page_width(page) <= PHONE["width"], "an opened row or the column picker widens the page"
        page.screenshot(path=output_dir / "batch-page-11-phone-row-open.png", full_page=True)
        check_axe(page, "phone, a row open")


def test_the_page_runs_under_its_content_security_policy(browser, stack):
    # The other tests bypass the CSP to inject axe; here it is enforced, and any refused
    # script or style would show as a console error (which fails the test).
    with open_page(browser, enforce_csp=True) as page:
        sign_in(page, stack, "partner")
        rows = page.locator("[data-testid^='batch-row-']")
        if rows.count() > 0:
            rows.first.get_by_role("button", name="View results").click()
            expect(rows.first.get_by_test_id("results")).to_be_visible()


# --- big batches in the table, deleting, direct uploads (issues 13 and 14) -----------------------

SCREENS = Path("/tmp/screens")  # screenshots of the new states (outside the repository)
BIG_ROWS = 5000


@pytest.fixture(scope="module")
def screens() -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    return SCREENS


def store_finished_batch(stack, rows: int, name: str) -> str:
    """A finished batch of `rows` rows of the partner's, written straight to the stack's database.

    bench/prestore.py writes the documents a finished batch has, in bulk (SecantusDB takes
    about 120 single writes a second; a 5,000-row batch goes in within seconds this way).
    A few rows are then made blocked or failed, so that the table's filters find something.
    """
    from pymongo import MongoClient

    from bench.prestore import prestore

    with MongoClient(stack.stack.mongodb_uri, tz_aware=True) as client:
        db = client[stack.stack.db_name]
        before = {d["_id"] for d in db.batches.find({}, {"_id": 1})}
        prestore(db, rows, user_id=stack.stack.user_ids["partner"], batch_rows=rows, seed=len(before) + 1)
        [batch_id] = [d["_id"] for d in db.batches.find({}, {"_id": 1}) if d["_id"] not in before]
        db.batches.update_one({"_id": batch_id}, {"$set": {"name": name, "createdAt": datetime.now(UTC),
                                                           "blockedItems": 3, "failedItems": 1,
                                                           "processedItems": rows - 4,
                                                           "status": "completed_with_errors"}})
        for index in (10, 400, 4000):
            if index < rows:
                db.batch_items.update_one({"batchId": batch_id, "rowIndex": index},
                                          {"$set": {"status": "blocked", "blockedBy": "piStage1", "answer": None}})
        db.batch_items.update_one({"batchId": batch_id, "rowIndex": 7},
                                  {"$set": {"status": "failed", "answer": None,
                                            "error": {"code": "AI_TIMEOUT", "message": "slow"}}})
    return str(batch_id)


def results_requests(page: Page) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if "/api/batch/results" in request.url else None)
    return seen


def open_card(page: Page, batch_id: str, search_label: str = "Search by name") -> Locator:
    page.get_by_label(search_label).fill(batch_id)
    row = batch_row(page, batch_id)
    expect(row).to_be_visible()
    return row


def test_a_5000_row_batch_is_paged_and_filtered_in_the_table_without_loading_every_row(browser, stack, screens):
    name = unique("five thousand")
    started = time.monotonic()
    batch_id = store_finished_batch(stack, BIG_ROWS, name)
    stored_seconds = time.monotonic() - started
    with open_page(browser) as page:
        asked = results_requests(page)
        sign_in(page, stack, "partner")
        row = open_card(page, batch_id)
        row.get_by_role("button", name="View results").click()

        table = row.get_by_role("table")
        expect(table.locator("tbody tr")).to_have_count(50)
        expect(row.get_by_test_id("results-page")).to_have_text("Page 1 of 100")
        expect(row.get_by_test_id("results-count")).to_have_text("5,000 of 5,000 rows shown.")
        assert all("limit=50" in url for url in asked), asked  # never every row at once
        check_axe(page, "5,000 rows, first page")

        row.get_by_role("button", name="Next page").click()
        expect(row.get_by_test_id("results-page")).to_have_text("Page 2 of 100")
        expect(table.locator("tbody tr").first.locator("td").nth(1)).to_have_text("52")

        row.get_by_label("Row status").select_option("blocked")
        expect(row.get_by_test_id("results-count")).to_have_text("3 of 5,000 rows shown.")
        expect(table.locator("tbody tr")).to_have_count(3)
        assert [r.get_attribute("data-status") for r in table.locator("tbody tr").all()] == ["blocked"] * 3
        page.screenshot(path=screens / "14-table-5000-filtered-blocked.png", full_page=True)
        check_axe(page, "5,000 rows, filtered to blocked")

        row.get_by_label("Row status").select_option("")
        row.get_by_label("Search the rows").fill("question 4321 (turn")
        expect(row.get_by_test_id("results-count")).to_have_text("1 of 5,000 rows shown.")
        row.get_by_role("button", name=re.compile(r"^Show row \d+ in full$")).first.click()
        expect(row.get_by_test_id("result-detail")).to_be_visible()
        page.screenshot(path=screens / "14-table-5000-search-row-open.png", full_page=True)
        check_axe(page, "5,000 rows, searched, a row open")
        assert len(asked) >= 4 and not any("offset" not in url for url in asked)

    with open_page(browser, viewport=PHONE) as page:
        sign_in(page, stack, "partner")
        page.get_by_role("button", name="Afficher cette page en français").click()
        row = open_card(page, batch_id, "Rechercher par nom")
        row.get_by_role("button", name="Voir les résultats").click()
        expect(row.get_by_role("table").locator("tbody tr")).to_have_count(50)
        row.get_by_label("Bloqué par").select_option("piStage1")
        expect(row.get_by_role("table").locator("tbody tr")).to_have_count(3)
        assert page_width(page) <= PHONE["width"], "the paged table widens the phone page"
        page.screenshot(path=screens / "14-table-5000-phone-fr.png", full_page=True)
        check_axe(page, "phone, French, 5,000 rows filtered")
    print(f"\n5,000-row batch stored in {stored_seconds:.1f} s")


@pytest.mark.parametrize(("lang", "viewport"), [("en", DESKTOP), ("fr", PHONE)])
def test_a_finished_batch_is_deleted_after_confirmation_and_leaves_the_list(browser, stack, api, screens, lang,
                                                                             viewport):
    from pymongo import MongoClient

    name = unique(f"delete {lang}")
    batch_id = store_finished_batch(stack, 300, name)
    words = {"en": ("Search by name", "Delete", "Delete this batch?", "Yes, delete the batch", "was deleted"),
             "fr": ("Rechercher par nom", "Supprimer", "Supprimer ce lot?", "Oui, supprimer le lot",
                    "a été supprimé")}
    search, delete, title, yes, gone = words[lang]
    with open_page(browser, viewport=viewport) as page:
        sign_in(page, stack, "partner")
        if lang == "fr":
            page.get_by_role("button", name="Afficher cette page en français").click()
        row = open_card(page, batch_id, search)
        row.get_by_role("button", name=delete, exact=True).click()
        dialog = page.get_by_role("alertdialog", name=title)
        expect(dialog).to_contain_text(name)
        if viewport == PHONE:
            assert page_width(page) <= PHONE["width"]
        page.screenshot(path=screens / f"14-delete-confirm-{lang}.png", full_page=True)
        check_axe(page, f"delete confirmation ({lang})")

        started = time.monotonic()
        dialog.get_by_role("button", name=yes).click()
        expect(row).to_have_count(0, timeout=60_000)
        seconds = time.monotonic() - started
        expect(page.get_by_test_id("batch-deleted")).to_contain_text(gone)
        page.screenshot(path=screens / f"14-deleted-{lang}.png", full_page=True)
        check_axe(page, f"after a delete ({lang})")
    print(f"\n300-row batch deleted through the page in {seconds:.1f} s")

    assert api.get(f"/api/batch/status?batchId={batch_id}",
                   headers={"Authorization": f"Bearer {stack.tokens['partner']}"}).status == 404
    with MongoClient(stack.stack.mongodb_uri) as client:
        db = client[stack.stack.db_name]
        from bson import ObjectId

        assert db.batch_items.count_documents({"batchId": ObjectId(batch_id)}) == 0
        assert db.batches.count_documents({"_id": ObjectId(batch_id)}) == 0


def big_csv(folder: Path, rows: int = 1000, note_chars: int = 5000) -> Path:
    """A CSV past Vercel's 4.5 MB request cap: few rows, each with a long note of its own."""
    path = folder / "big-questions.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["QUESTION", "notes"])
        for n in range(rows):
            writer.writerow([f"Question {n}: how do I renew my passport?", f"{n} " + "x" * note_chars])
    assert path.stat().st_size > 4_718_592
    return path


@pytest.mark.parametrize(("lang", "viewport"), [("en", DESKTOP), ("fr", PHONE)])
def test_a_file_past_4_5_mb_goes_straight_to_storage_with_a_progress_bar(browser, stack, api, screens, tmp_path,
                                                                         lang, viewport):
    path = big_csv(tmp_path)
    words = {"en": ("Spreadsheet of questions", "Batch name", "Upload and start",
                    "Sending “big-questions.csv” to file storage",
                    "a file past that goes straight to file storage, up to 100 MB and 100,000 rows"),
             "fr": ("Tableur de questions", "Nom du lot", "Téléverser et lancer",
                    "Envoi de « big-questions.csv » au stockage des fichiers",
                    ("un fichier plus gros va directement au stockage des fichiers, "
                     "jusqu’à 100 Mo et 100 000 lignes"))}
    file_label, name_label, submit, bar_name, limits = words[lang]
    with open_page(browser, viewport=viewport) as page:
        sign_in(page, stack, "partner")
        if lang == "fr":
            page.get_by_role("button", name="Afficher cette page en français").click()
        assert limits in page.get_by_test_id("upload-limits").inner_text().replace("\u202f", " ").replace("\xa0", " ")
        # Slow the upload down (1 MB/s) so that the bar is seen moving.
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                      "uploadThroughput": 1_000_000})
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        page.get_by_label(file_label).set_input_files(path)
        page.get_by_label(name_label).fill(unique(f"direct {lang}"))
        started = time.monotonic()
        page.get_by_role("button", name=submit).click()

        bar = page.get_by_role("progressbar", name=bar_name)
        expect(bar).to_be_visible()
        expect(bar).not_to_have_attribute("value", "0", timeout=10_000)
        page.wait_for_function("() => Number(document.querySelector('#upload-progress-bar')?.value) >= 20")
        if viewport == PHONE:
            assert page_width(page) <= PHONE["width"]
        page.screenshot(path=screens / f"13-direct-upload-progress-{lang}.png", full_page=True)
        check_axe(page, f"direct upload in progress ({lang})")

        expect(page.get_by_test_id("upload-success")).to_be_visible(timeout=UPLOAD_TIMEOUT_MS)
        seconds = time.monotonic() - started
        batch_id = page.get_by_test_id("upload-batch-id").inner_text().strip()
        page.screenshot(path=screens / f"13-direct-upload-created-{lang}.png", full_page=True)
        check_axe(page, f"direct upload created ({lang})")
    print(f"\n{path.stat().st_size:,} bytes sent straight to storage and created in {seconds:.1f} s")

    s3 = stack.stack.s3_url
    assert any(url.startswith(s3) for url in posts), posts  # the file went to storage, not through create
    assert any(url.endswith("/api/batch/upload-url") for url in posts)
    token = stack.tokens["partner"]
    status = batch_status(api, token, batch_id)
    assert status["totalItems"] == 1000 and status["fileName"] == "big-questions.csv"
    # Not left running on a shared machine: cancelled, then deleted once it has stopped.
    api.post("/api/batch/cancel", headers={"Authorization": f"Bearer {token}"}, data={"batchId": batch_id})
    wait_until_final(api, token, batch_id)
    deleted = api.post("/api/batch/delete", headers={"Authorization": f"Bearer {token}"}, data={"batchId": batch_id})
    while deleted.status == 202:
        deleted = api.post("/api/batch/delete", headers={"Authorization": f"Bearer {token}"},
                           data={"batchId": batch_id})
    assert deleted.status == 200, deleted.text()


def test_a_direct_upload_passes_the_pages_content_security_policy(browser, stack, api, tmp_path):
    # The app server names its own storage in connect-src (lib.http.storage_sources); a
    # refused post would be a console error, which fails the test.
    with open_page(browser, enforce_csp=True) as page:
        response = page.goto(stack.base_url)
        assert stack.stack.s3_url in response.headers["content-security-policy"]
        sign_in(page, stack, "partner")
        page.get_by_label("Spreadsheet of questions").set_input_files(big_csv(tmp_path))
        page.get_by_label("Batch name").fill(unique("direct under csp"))
        page.get_by_role("button", name="Upload and start").click()
        expect(page.get_by_test_id("upload-success")).to_be_visible(timeout=UPLOAD_TIMEOUT_MS)
        batch_id = page.get_by_test_id("upload-batch-id").inner_text().strip()
    token = stack.tokens["partner"]
    api.post("/api/batch/cancel", headers={"Authorization": f"Bearer {token}"}, data={"batchId": batch_id})
    wait_until_final(api, token, batch_id)
