"""Evaluation runs on the batch page, in Chromium against the full local stack (issue 12 item 8).

The stack is the one of tests/e2e/conftest.py (`stack_factory`) with the `openai`
provider pointed at the provider stand-in (tests/support/provider_stub.py), which answers
every pipeline stage and both judges as a well-behaved model would. The outside world is
the only thing faked: the stand-in is told, per phase of a test, to answer some questions
differently (a drift from the baseline, which its similarity judge then finds worse) or to
fail them with HTTP 500 (rows that the retry runs again).

Each state is checked with axe-core (ui/node_modules/axe-core), which must find no
violation; screenshots go to /tmp/screens/eval-*.png (not in the repository).
"""

from __future__ import annotations

import csv
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import APIRequestContext, Browser, Locator, Page, Playwright, expect

from tests.support.browser import DESKTOP, PHONE, check_axe
from tests.support.provider_stub import Fault, ProviderStub, RecordedRequest, model_text

SCREENS = Path("/tmp/screens")
RUN_TIMEOUT_S = 120
FINAL = ("processed", "completed_with_errors", "cancelled", "failed")
QUESTIONS = [
    "How do I renew my Canadian passport from abroad?",
    "How do I apply for employment insurance sickness benefits?",
    "What is the GST/HST credit and who can get it?",
    "How do I change my address with the Canada Revenue Agency?",
]
DRIFTED = "passport"  # the second run answers this question otherwise, and its judge prefers the baseline
FAILING = "employment insurance"
ANALYZER_LABELS = {"refusal": "Refusal", "citation": "Citation", "similar-answer": "Similar answer",
                   "expert-scorer": "Expert scorer"}  # the retry test's provider fails this question until the outage ends


class StandIn:
    """What the provider stand-in does, phase by phase: `drift` and `outage` are switched by the tests."""

    def __init__(self, stub: ProviderStub):
        self.stub = stub
        self.drift = False
        self.outage = False
        stub.rule(self.decide)

    def decide(self, request: RecordedRequest) -> Fault | None:
        question = request.question.lower()
        if self.outage and request.stage == "answer" and FAILING in question:
            return Fault.status(500)
        if self.drift and request.stage == "answer" and DRIFTED in question:
            return Fault.reply(model_text(request).replace(
                "Stub answer to:", "Other guidance with different steps, fees and dates for"))
        if self.drift and request.stage == "analyzer.similar-answer" and "other guidance" in question:
            return Fault.reply(json.dumps({"label": "meaning-drift", "score": 0.31,
                                           "changedFacts": ["the steps", "the fees"], "winner": "baseline"}))
        return None


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    with ProviderStub() as stub:
        yield StandIn(stub)


@pytest.fixture(scope="module")
def eval_stack(stack_factory, stand_in):
    """The local stack, `openai` answered by the stand-in; one attempt a row, so a provider failure fails the row."""
    return stack_factory({**stand_in.stub.env(), "PROVIDER_MAX_RETRIES": "0", "MAX_ATTEMPTS": "1",
                          "BATCH_CONCURRENCY": "4"})


@pytest.fixture(scope="module")
def api(pw: Playwright, eval_stack) -> Iterator[APIRequestContext]:
    context = pw.request.new_context(base_url=eval_stack.base_url)
    yield context
    context.dispose()


@pytest.fixture(scope="module")
def questions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("evaluation") / "evaluation-questions.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["REDACTEDQUESTION", "ticket"])
        writer.writerows([question, f"T-{n}"] for n, question in enumerate(QUESTIONS, start=1))
    return path


@pytest.fixture(scope="module")
def screens() -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    return SCREENS


@contextmanager
def open_page(browser: Browser, *, viewport: dict | None = None, locale: str = "en-CA") -> Iterator[Page]:
    """A page in a fresh context (CSP bypassed so that axe can be injected) that fails on any console or page error."""
    context = browser.new_context(viewport=viewport or DESKTOP, locale=locale, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console error: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    try:
        yield page
    finally:
        context.close()
    assert problems == [], problems


def sign_in(page: Page, stack, user: str = "partner") -> None:
    page.goto(stack.signin_url(user))
    expect(page.get_by_role("heading", name=re.compile("^(Your batches|Vos lots)$"))).to_be_visible()


def open_evaluation(page: Page) -> None:
    """Opens the form's evaluation section (closed at first, it stays open after an upload)."""
    toggle = page.get_by_role("button", name="Evaluation options")
    if toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")


def upload_evaluation(page: Page, file: Path, name: str, *, analyzers: tuple[str, ...], baseline: str | None = None,
                      trials: int = 1) -> str:
    """Uploads through the form with the `openai` provider and these evaluation choices; returns the batch id."""
    page.get_by_label("Spreadsheet of questions").set_input_files(file)
    page.get_by_label("Batch name").fill(name)
    page.get_by_label("AI provider").select_option("openai")
    open_evaluation(page)
    page.get_by_label("Trials").fill(str(trials))
    for analyzer, label in ANALYZER_LABELS.items():
        box = page.get_by_label(label, exact=True)
        if box.is_checked() != (analyzer in analyzers):
            box.click()
    select = page.get_by_label("Baseline batch")
    if baseline is not None:
        select.focus()  # the list is read again: the baseline finished after the form first read it
        expect(select.locator(f"option[value='{baseline}']")).to_have_count(1)
        select.select_option(baseline)
    else:
        select.select_option("")
    page.get_by_role("button", name="Upload and start").click()
    expect(page.get_by_test_id("upload-success")).to_be_visible(timeout=60_000)
    return page.get_by_test_id("upload-batch-id").inner_text().strip()


def status_of(api: APIRequestContext, stack, batch_id: str) -> dict:
    answer = api.get(f"/api/batch/status?batchId={batch_id}", headers={"Authorization": f"Bearer {stack.tokens['partner']}"})
    assert answer.status == 200, answer.text()
    return answer.json()


def wait_until_final(api: APIRequestContext, stack, batch_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        status = status_of(api, stack, batch_id)
        if status["status"] in FINAL:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.5)


def card(page: Page, batch_id: str) -> Locator:
    return page.get_by_test_id(f"batch-row-{batch_id}")


def unique(label: str) -> str:
    return f"e2e {label} {uuid.uuid4().hex[:6]}"


def fits_the_phone(page: Page) -> None:
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_baseline_comparison_of_two_batches_of_the_same_file(browser, eval_stack, stand_in, api, questions, screens):
    stand_in.drift = False
    with open_page(browser) as page:
        sign_in(page, eval_stack)
        first = upload_evaluation(page, questions, unique("baseline"), analyzers=("similar-answer", "expert-scorer"))
        assert status_of(api, eval_stack, first)["analyzers"] == ["similar-answer", "expert-scorer"]
        assert wait_until_final(api, eval_stack, first)["status"] == "processed"

        # The second run of the same file, with the first as its baseline; the stand-in now
        # answers the passport question otherwise, and judges that answer worse.
        stand_in.drift = True
        upload_form = page.get_by_test_id("batch-upload")
        second_name = unique("against baseline")
        page.get_by_label("Spreadsheet of questions").set_input_files(questions)
        open_evaluation(page)
        # The list is read again each time it gets focus (a batch may have ended since), as a
        # user tabbing back to it would; the first batch ended moments ago.
        baseline_option = page.get_by_label("Baseline batch").locator(f"option[value='{first}']")
        deadline = time.monotonic() + 20
        while baseline_option.count() == 0 and time.monotonic() < deadline:
            page.get_by_label("Batch name").focus()
            page.get_by_label("Baseline batch").focus()
            time.sleep(1.2)  # past the list's re-read interval (BASELINE_REFRESH_MS)
        expect(baseline_option).to_have_count(1)
        upload_form.screenshot(path=screens / "eval-01-upload-form.png")
        check_axe(page, "upload form with the evaluation fields")
        second = upload_evaluation(page, questions, second_name, analyzers=("similar-answer", "expert-scorer"),
                                   baseline=first)
        final = wait_until_final(api, eval_stack, second)
        stand_in.drift = False
        assert final["status"] == "processed", final
        assert final["baselineBatchId"] == first

        row = card(page, second)
        expect(row).to_have_attribute("data-status", "processed", timeout=30_000)
        # The summary is open on an evaluation run; against the baseline: 3 same, 1 drifted and worse.
        summary = row.get_by_test_id("summary-panel")
        expect(summary.get_by_role("button", name="Hide the summary")).to_be_visible()
        expect(summary.get_by_test_id("summary-status-succeeded")).to_have_text(str(len(QUESTIONS)))
        expect(summary.get_by_test_id("summary-baseline-same")).to_have_text("3")
        expect(summary.get_by_test_id("summary-baseline-drift")).to_have_text("1")
        expect(summary.get_by_test_id("summary-baseline-worse")).to_have_text("1")
        expect(summary.get_by_test_id("summary-analyzer-similar-answer").get_by_test_id("pass-rate")).to_have_text("75%")
        expect(summary.get_by_test_id("summary-p50")).to_have_text(re.compile(r"^\d[\d.,]* (ms|s)$"))
        expect(summary.get_by_test_id("summary-input-tokens")).to_have_text(re.compile(r"^[1-9][\d,]*$"))
        expect(summary.get_by_test_id("summary-cost-value")).to_have_text(re.compile(r"^US\$\d+\.\d+ \(no budget\)$"))
        row.screenshot(path=screens / "eval-02-summary.png")
        check_axe(page, "summary")

        # The comparison, side by side, then only the rows that drifted or got worse.
        row.get_by_role("button", name="Compare with the baseline").click()
        table = row.get_by_test_id("compare-table")
        expect(table.locator("tbody tr")).to_have_count(len(QUESTIONS))
        expect(row.get_by_test_id("compare-count")).to_have_text(f"Showing {len(QUESTIONS)} of {len(QUESTIONS)} rows.")
        expect(row.get_by_role("heading", level=4, name=re.compile("beside its baseline"))).to_contain_text("baseline")
        drifted = table.locator("tbody tr", has_text="passport")
        expect(drifted).to_contain_text("Stub answer to")  # the baseline's answer
        expect(drifted).to_contain_text("Other guidance with different steps")  # the new one
        expect(drifted.get_by_test_id("compare-verdict")).to_have_text("Worse")
        row.screenshot(path=screens / "eval-03-comparison.png")
        check_axe(page, "comparison")

        row.get_by_label("Only the rows that drifted or got worse").check()
        expect(table.locator("tbody tr")).to_have_count(1)
        expect(table.locator("tbody tr")).to_contain_text("passport")
        expect(row.get_by_test_id("compare-count")).to_have_text(f"Showing 1 of {len(QUESTIONS)} rows.")
        row.screenshot(path=screens / "eval-04-comparison-drifted.png")
        check_axe(page, "comparison filtered to drifted rows")

    # On a phone, in French: the filtered comparison without sideways scrolling of the page.
    with open_page(browser, viewport=PHONE, locale="fr-CA") as page:
        sign_in(page, eval_stack)
        page.get_by_test_id("language-switch").click()
        expect(page.get_by_role("heading", name="Vos lots")).to_be_visible()
        row = card(page, second)
        row.get_by_role("button", name="Comparer au lot de référence").click()
        row.get_by_label("Seulement les lignes dont le sens a changé ou qui sont moins bonnes").check()
        expect(row.get_by_test_id("compare-table").locator("tbody tr")).to_have_count(1)
        expect(row.get_by_test_id("compare-verdict")).to_have_text("Moins bonne")
        expect(row.get_by_test_id("summary-baseline-drift")).to_have_text("1")
        fits_the_phone(page)
        expect(row.get_by_test_id("compare-count")).to_have_text(f"1 ligne affichée sur {len(QUESTIONS)}.")
        row.get_by_test_id("compare-view").screenshot(path=screens / "eval-05-phone-fr-comparison.png")
        check_axe(page, "phone, French, comparison")


def test_failed_rows_run_again_after_a_provider_outage(browser, eval_stack, stand_in, api, questions, screens):
    stand_in.outage = True
    with open_page(browser) as page:
        sign_in(page, eval_stack)
        batch_id = upload_evaluation(page, questions, unique("outage"), analyzers=("refusal", "citation"), trials=2)
        ended = wait_until_final(api, eval_stack, batch_id)
        rows = 2 * len(QUESTIONS)  # two trials of each question
        assert ended["status"] == "completed_with_errors", ended
        assert (ended["totalItems"], ended["processedItems"], ended["failedItems"]) == (rows, rows - 2, 2), ended
        stand_in.outage = False  # the provider is back

        row = card(page, batch_id)
        expect(row).to_have_attribute("data-status", "completed_with_errors", timeout=30_000)
        expect(row.get_by_test_id("summary-status-failed")).to_have_text("2")
        expect(row.get_by_test_id("summary-total")).to_have_text(f"{rows} ({len(QUESTIONS)} questions × 2 trials)")
        expect(row.get_by_test_id("summary-stability-allPass")).to_have_text(str(len(QUESTIONS) - 1))
        expect(row.get_by_test_id("summary-stability-allFail")).to_have_text("1")
        row.screenshot(path=screens / "eval-06-failed-rows.png")
        check_axe(page, "a batch with failed rows")
        retry = row.get_by_role("button", name="Retry failed rows")
        retry.click()
        dialog = page.get_by_role("alertdialog", name="Run the failed rows again?")
        expect(dialog).to_contain_text("The 2 failed rows of")
        page.screenshot(path=screens / "eval-07-retry-confirmation.png")
        check_axe(page, "retry confirmation")
        dialog.get_by_role("button", name="Yes, run them again").click()

        outcome = row.get_by_test_id("retry-outcome")
        expect(outcome).to_have_text(re.compile(r"^(2 rows are running again|Run 2 has finished)"))
        expect(outcome).to_be_focused()
        again = wait_until_final(api, eval_stack, batch_id)
        assert again["status"] == "processed", again
        assert (again["processedItems"], again["failedItems"], again["cancelledItems"]) == (rows, 0, 0), again
        expect(row).to_have_attribute("data-status", "processed", timeout=30_000)
        expect(row.get_by_role("button", name="Retry failed rows")).to_have_count(0)
        expect(outcome).to_have_text("Run 2 has finished.")
        expect(row.get_by_test_id("summary-status-succeeded")).to_have_text(str(rows), timeout=30_000)
        expect(row.get_by_test_id("summary-status-failed")).to_have_count(0)
        expect(row.get_by_test_id("summary-stability-allPass")).to_have_text(str(len(QUESTIONS)))
        row.screenshot(path=screens / "eval-08-retried.png")
        check_axe(page, "after the retry")

        # Asked again now that nothing failed, the server's 409 is worded for a retry.
        answer = api.post("/api/batch/retry", headers={"Authorization": f"Bearer {eval_stack.tokens['partner']}"},
                          data={"batchId": batch_id, "statuses": ["failed"]})
        assert answer.status == 409 and answer.json()["error"]["code"] == "NOTHING_TO_RETRY", answer.text()


def test_a_batch_stopped_by_its_budget_runs_its_cancelled_rows_again_within_a_higher_one(browser, eval_stack, api,
                                                                                        questions, screens):
    with open_page(browser) as page:
        sign_in(page, eval_stack)
        at_once = page.get_by_label("Rows at once")
        # The options' default lands in the field once they load; filling before that can leave both ("41").
        expect(at_once).not_to_have_value("")
        at_once.fill("1")  # one row at a time: the budget is met after the first rows
        expect(at_once).to_have_value("1")
        open_evaluation(page)
        page.get_by_label("Budget (US dollars)").fill("0.002")
        batch_id = upload_evaluation(page, questions, unique("budget"), analyzers=())
        ended = wait_until_final(api, eval_stack, batch_id)
        assert ended["budgetUsd"] == 0.002 and ended["stopReason"] == "BUDGET_EXCEEDED", ended
        assert ended["estimatedCostUsd"] >= 0.002 and ended["cancelledItems"] >= 1, ended
        token = {"Authorization": f"Bearer {eval_stack.tokens['partner']}"}
        # Without a new budget the server refuses (409), which the page words (its Vitest tests).
        refused = api.post("/api/batch/retry", headers=token, data={"batchId": batch_id, "statuses": ["cancelled"]})
        assert refused.status == 409 and refused.json()["error"]["code"] == "BUDGET_EXCEEDED", refused.text()

        row = card(page, batch_id)
        expect(row).to_have_attribute("data-status", ended["status"], timeout=30_000)
        summary = row.get_by_test_id("summary-panel")  # open: the batch had a budget
        expect(summary.get_by_test_id("summary-budget-reached")).to_have_text(
            "The budget was reached: rows not started yet were cancelled.")
        expect(summary.get_by_test_id("summary-cost-value")).to_have_text(
            re.compile(r"^US\$0\.00\d\d of a US\$0\.0020 budget \(\d[\d.]*%\)$"))
        expect(summary.get_by_test_id("summary-status-cancelled")).to_have_text(str(ended["cancelledItems"]))

        # The page asks for a higher budget before the cancelled rows may run again.
        budget = row.get_by_label("New budget (US dollars)")
        expect(budget).to_be_visible()
        row.get_by_role("button", name="Run cancelled rows again").click()
        expect(budget).to_be_focused()
        expect(budget).to_have_attribute("aria-invalid", "true")
        row.screenshot(path=screens / "eval-09-budget-reached.png")
        check_axe(page, "budget reached, a higher one asked for")
        budget.fill("1")
        row.get_by_role("button", name="Run cancelled rows again").click()
        dialog = page.get_by_role("alertdialog", name="Run the cancelled rows again?")
        expect(dialog).to_contain_text("Its budget becomes US$1.00.")
        dialog.get_by_role("button", name="Yes, run them again").click()
        # The retry has been answered (the batch is queued again) before its end is awaited.
        expect(row.get_by_test_id("retry-outcome")).to_have_text(
            re.compile(r"^(\d+ rows? (is|are) running again|Run 2 has finished)"))

        again = wait_until_final(api, eval_stack, batch_id)
        assert again["status"] == "processed", again
        assert (again["processedItems"], again["cancelledItems"], again["budgetUsd"]) == (len(QUESTIONS), 0, 1.0), again
        expect(row.get_by_test_id("retry-outcome")).to_have_text("Run 2 has finished.", timeout=30_000)
        expect(row.get_by_test_id("summary-cost-value")).to_have_text(
            re.compile(r"^US\$0\.\d{4} of a US\$1\.00 budget \(\d[\d.]*%\)$"), timeout=30_000)
        row.screenshot(path=screens / "eval-10-budget-raised.png")
        check_axe(page, "after running again within a higher budget")
