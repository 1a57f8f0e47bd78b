"""The batch page in a real browser against the full local stack.

The `stack` and `output_dir` fixtures come from tests/e2e/conftest.py: the stack serves
ui/dist at `/` and the API at `/api/...`, with the offline AI provider slowed to about
1.5 s per answer and a batch concurrency of 4, so a batch stays visibly in progress for
a few seconds. Every page fails the test on a console error or an uncaught page error.
Screenshots of the main states are saved under `output_dir`.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import APIRequestContext, Browser, Locator, Page, Playwright, expect, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ORIGINAL_COLUMNS = ["chatId", "REDACTEDQUESTION", "URL", "ticket"]
RESULT_COLUMNS = ["status", "redactedQuestion", "answer", "citationUrl", "error", "interactionId", "responseTimeMs"]
RUN_TIMEOUT_MS = 120_000  # a 10-row batch takes seconds; leave room for a slow machine


@pytest.fixture(scope="module")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(pw: Playwright) -> Iterator[Browser]:
    chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def api(pw: Playwright, stack) -> Iterator[APIRequestContext]:
    """Playwright's HTTP client, to set up and check data behind the page's back."""
    context = pw.request.new_context(base_url=stack.base_url)
    yield context
    context.dispose()


@contextmanager
def open_page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context that fails the test on any console error or page error."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900}, locale="en-CA")
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console error: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    try:
        yield page
    finally:
        context.close()
    assert problems == [], problems


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
    expect(page.get_by_test_id("upload-success")).to_be_visible()
    batch_id = page.get_by_test_id("upload-batch-id").inner_text().strip()
    assert batch_id
    return batch_id


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
        # The form offers what this deployment configured, at its default concurrency.
        expect(page.get_by_label("Rows at once")).to_have_value(str(options["defaults"]["concurrency"]))
        assert page.get_by_label("AI provider").locator("option").all_inner_texts() == options["aiProviders"]
        assert page.get_by_label("Search provider").locator("option").all_inner_texts() == options["searchProviders"]
        page.get_by_label("Spreadsheet of questions").set_input_files(sample)
        page.screenshot(path=output_dir / "batch-page-02-upload-form.png", full_page=True)

        batch_id = upload(page, sample, unique("conversations"))
        row = batch_row(page, batch_id)
        progress = row.get_by_role("progressbar")

        # In progress: a live bar with counts and a time estimate.
        expect(row).to_have_attribute("data-status", "processing", timeout=RUN_TIMEOUT_MS)
        expect(progress).to_have_attribute("aria-valuemax", "100")
        expect(row.get_by_test_id("batch-eta")).to_be_visible()
        expect(row.get_by_test_id("batch-counts")).to_contain_text("Total: 10")
        expect(row.get_by_role("button", name="Cancel batch")).to_be_visible()
        page.screenshot(path=output_dir / "batch-page-03-in-progress.png", full_page=True)

        # Finished: 100 %, status processed, a duration, no cancel any more.
        expect(progress).to_have_attribute("aria-valuenow", "100", timeout=RUN_TIMEOUT_MS)
        expect(row).to_have_attribute("data-status", "processed", timeout=RUN_TIMEOUT_MS)
        expect(row.get_by_test_id("batch-status")).to_have_text("Processed")
        expect(row.get_by_test_id("batch-percent")).to_contain_text("10 of 10")
        expect(row.get_by_test_id("batch-duration")).to_have_text(re.compile(r"Duration: .*\d+ (s|min|h)"))
        expect(row.get_by_role("button", name="Cancel batch")).to_have_count(0)
        expect(page.get_by_test_id("live-region")).to_contain_text("Processed, 100% complete")
        page.screenshot(path=output_dir / "batch-page-04-finished.png", full_page=True)

        # The CSV comes back in input order, original columns first, then the answers.
        with page.expect_download() as download_info:
            row.get_by_role("button", name="Download CSV").click()
        download = download_info.value
        assert download.suggested_filename.endswith(".csv")
        saved = output_dir / f"batch-page-results-{batch_id}.csv"
        download.save_as(saved)
        check_results_csv(saved.read_bytes().decode("utf-8-sig"), sample.read_text(encoding="utf-8-sig"))

        with page.expect_download() as download_info:
            row.get_by_role("button", name="Download Excel").click()
        workbook = download_info.value
        assert workbook.suggested_filename.endswith(".xlsx")
        assert Path(workbook.path()).read_bytes()[:2] == b"PK"  # an XLSX is a zip

        # The results table shows every row in order.
        row.get_by_role("button", name="View results").click()
        table = row.get_by_role("table")
        expect(table.locator("tbody tr")).to_have_count(10)
        expect(table.locator("tbody tr[data-status='succeeded']")).to_have_count(10)
        expect(table.locator("thead")).to_contain_text("Answer")
        first_answer = table.locator("tbody tr").first.locator("td").nth(3)
        expect(first_answer).not_to_have_text("")
        row.get_by_role("table").scroll_into_view_if_needed()
        page.screenshot(path=output_dir / "batch-page-05-results-table.png", full_page=True)

        # Every API call carried the bearer token, and none put it in a URL.
        token = stack.tokens["partner"]
        assert api_calls, "the page made no API call"
        for request in api_calls:
            assert request.all_headers().get("authorization") == f"Bearer {token}", request.url
            assert token not in request.url


def check_results_csv(downloaded: str, original: str) -> None:
    """The downloaded rows match the input row by row; the answer columns are filled."""
    sent = read_csv(original)
    got = read_csv(downloaded)
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
        assert actual[index["redactedQuestion"]].strip(), (number, actual)
        assert actual[index["answer"]].strip(), (number, actual)
        assert actual[index["interactionId"]].strip(), (number, actual)
        assert actual[index["error"]] == "", (number, actual)
        if repeated_chat_id is not None and expected[0]:
            assert actual[repeated_chat_id] == expected[0], (number, actual)


def test_a_partner_cancels_a_running_batch_through_the_confirmation_dialog(browser, stack, output_dir):
    with open_page(browser) as page:
        sign_in(page, stack, "partner")
        batch_id = upload(page, stack.samples_dir / "questions-en.csv", unique("to cancel"))
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
        page.keyboard.press("Tab")
        expect(dialog.get_by_role("button", name="Yes, cancel the batch")).to_be_focused()
        page.keyboard.press("Enter")

        expect(dialog).to_have_count(0)
        expect(row).to_have_attribute("data-status", "cancelled", timeout=RUN_TIMEOUT_MS)
        expect(row.get_by_test_id("batch-status")).to_have_text("Cancelled")
        expect(row.get_by_role("button", name="Cancel batch")).to_have_count(0)
        # Rows that were in flight finish and are counted; the others are cancelled.
        expect(row.get_by_test_id("batch-percent")).to_contain_text("15 of 15", timeout=RUN_TIMEOUT_MS)
        # Stays cancelled after a fresh read of the list.
        page.get_by_role("button", name="Refresh list").click()
        expect(row).to_have_attribute("data-status", "cancelled")
        page.screenshot(path=output_dir / "batch-page-07-cancelled.png", full_page=True)


def test_the_page_switches_to_french(browser, stack, output_dir):
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
        rows = page.locator("[data-testid^='batch-row-']")
        if rows.count() > 0:
            expect(rows.first.get_by_role("button", name="Télécharger CSV")).to_be_visible()
        page.screenshot(path=output_dir / "batch-page-08-french.png", full_page=True)

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
