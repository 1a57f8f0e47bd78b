"""A batch row goes through the assistant's whole pipeline (issue 11): refusals, languages, answer fields."""

from __future__ import annotations

import csv
import io

from bson import ObjectId

QUESTIONS = [
    ("c1", "I want to apply for a Canadian passport for my child."),
    ("c1", "How long does it take?"),
    ("", "Comment renouveler mon passeport?"),
    ("", "My phone number is 613 555 0199, please call me about my EI claim."),
    ("", "Hi"),
    ("", "What is the best recipe for banana bread?"),
    ("", "How do I renew my driver's licence in Ontario?"),
    ("", "001. How do I apply for EI regular benefits?"),
]


def upload(live, rows=QUESTIONS, **fields):
    lines = io.StringIO()
    writer = csv.writer(lines)
    writer.writerow(["chatId", "QUESTION", "ticket "])
    for n, (chat, question) in enumerate(rows):
        writer.writerow([chat, question, f"T-{n}"])
    response = live.upload("partner", lines.getvalue().encode(), "mixed.csv", lang="en", **fields)
    assert response.status_code == 202, response.text
    return response.json()


def test_refused_rows_are_blocked_results_not_errors_and_the_batch_is_processed(live):
    created = upload(live)
    final = live.wait_final("partner", created["batchId"])

    assert final["status"] == "processed"
    assert final["blockedItems"] == 2 and final["failedItems"] == 0
    assert final["processedItems"] + final["blockedItems"] == final["totalItems"] == len(QUESTIONS)
    rows = live.results("partner", created["batchId"]).json()["items"]
    by_question = {r["QUESTION"]: r for r in rows}
    phone = next(r for r in rows if "phone number" in r["QUESTION"])
    assert phone["status"] == "blocked" and phone["blockedBy"] == "piStage1"
    assert "613" not in phone["QUESTION"] and "XXX" in phone["QUESTION"]
    assert by_question["Hi"]["status"] == "blocked" and by_question["Hi"]["blockedBy"] == "shortQuery"
    assert phone["answer"] is None and phone["error"] is None


def test_a_blocked_rows_clear_text_is_stored_nowhere(live):
    created = upload(live)
    live.wait_final("partner", created["batchId"])

    store = live.services.store
    items = list(store.batch_items.find({"batchId": ObjectId(created["batchId"])}))
    dump = repr(items) + repr(list(store.interactions.find({})))
    assert "555 0199" not in dump and "5550199" not in dump


def test_each_row_is_answered_in_its_own_language_with_the_answer_fields(live):
    created = upload(live)
    live.wait_final("partner", created["batchId"])
    body = live.results("partner", created["batchId"]).json()
    rows = {r["QUESTION"]: r for r in body["items"]}

    french = rows["Comment renouveler mon passeport?"]
    assert french["questionLanguage"] == "fra" and french["answer"].startswith("[Réponse hors ligne]")
    assert "/fr/" in french["citationUrl"]
    english = rows["I want to apply for a Canadian passport for my child."]
    assert english["questionLanguage"] == "eng" and english["answerType"] == "normal"
    assert english["sentence1"] and english["department"] == "IRCC" and english["searchQuery"]
    assert rows["What is the best recipe for banana bread?"]["answerType"] == "not-gc"
    assert rows["How do I renew my driver's licence in Ontario?"]["answerType"] == "pt-muni"
    assert "001" not in rows["001. How do I apply for EI regular benefits?"]["searchQuery"]


def test_a_follow_up_stays_on_its_conversations_topic(live):
    created = upload(live)
    live.wait_final("partner", created["batchId"])
    rows = {r["QUESTION"]: r for r in live.results("partner", created["batchId"]).json()["items"]}

    assert "passport" in rows["How long does it take?"]["citationUrl"]


def test_results_keep_the_files_headers_exactly_and_add_the_contract_columns(live):
    created = upload(live)
    live.wait_final("partner", created["batchId"])
    columns = live.results("partner", created["batchId"]).json()["columns"]

    assert columns[:4] == ["rowNumber", "chatId", "QUESTION", "ticket "]
    assert columns.count("chatId") == 1  # the file's own column is the conversation
    for name in ("status", "blockedBy", "questionLanguage", "englishQuestion", "answerType", "englishAnswer",
                 "sentence1", "sentence4", "citationHead", "aiCitationUrl", "citationUrl", "department",
                 "departmentUrl", "searchQuery", "model", "inputTokens", "outputTokens", "expert.totalScore"):
        assert name in columns
    assert "redactedQuestion" in columns  # the question column is QUESTION, not REDACTEDQUESTION


def test_the_interaction_keeps_every_field_of_the_assistants_record(live):
    created = upload(live, rows=[("", "How do I apply for EI regular benefits?")])
    live.wait_final("partner", created["batchId"])
    doc = live.services.store.interactions.find_one({})

    assert doc["pipeline"] == "local"
    assert doc["question"]["language"] == "eng" and doc["question"]["englishQuestion"]
    assert doc["answer"]["answerType"] == "normal" and doc["answer"]["sentences"]
    assert doc["context"]["department"] and doc["context"]["searchQuery"]
    assert {"rules", "answer", "citation", "totalMs"} <= set(doc["timings"])
    assert doc["tokens"]["input"] > 0 and "answer" in doc["tokens"]["byStage"]
