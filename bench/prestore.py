"""Fill a database with finished batches of other users, fast, for the scale benchmark.

`prestore(db, rows)` writes `rows` finished rows as batches of `batch_rows`: the batch
documents (processed, counters set, `interactions` listed), their items as the create
endpoint writes them plus what a successful step adds (lib/batches.py `_item_docs`,
lib/execution.py), one interaction per row as the chat pipeline writes it
(lib/chat/service.py) and one chat per conversation. Everything goes in with
`insert_many` in chunks, straight through pymongo: no endpoint, no provider, no step.
The shapes mirror the real documents closely enough that indexes, document sizes and
collection sizes are those of a database that has seen that many rows.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bson import ObjectId

from bench.harness import answer_text

CHUNK = 1000
TOPICS = ("renew my passport", "apply for Employment Insurance", "get a Social Insurance Number",
          "file my taxes online", "apply for Old Age Security", "get a work permit",
          "apply for the Canada Child Benefit")
CITATION = "https://www.canada.ca/en/services/benefits.html"


@dataclass(frozen=True)
class Prestored:
    rows: int
    batches: int
    interactions: int
    chats: int
    seconds: float


def prestore(db: Any, rows: int, *, user_id: str, batch_rows: int = 3000, answer_chars: int = 600,
             seed: int = 7) -> Prestored:
    """Write `rows` finished rows (in batches of `batch_rows`) owned by `user_id` into `db`."""
    started = time.perf_counter()
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    batches = interactions = chats = 0
    for number, start in enumerate(range(0, rows, batch_rows)):
        size = min(batch_rows, rows - start)
        created = now - timedelta(days=30 - number % 30, minutes=number)
        batch_id = ObjectId()
        items, turns, chat_docs = _batch_rows(batch_id, size, user_id, created, rng, answer_chars)
        for collection, docs in (("batch_items", items), ("interactions", turns), ("chats", chat_docs)):
            for chunk in _chunks(docs):
                db[collection].insert_many(chunk, ordered=False)
        db.batches.insert_one(_batch_doc(batch_id, number, size, user_id, created,
                                         [d["interactionId"] for d in items]))
        batches += 1
        interactions += len(turns)
        chats += len(chat_docs)
    return Prestored(rows, batches, interactions, chats, time.perf_counter() - started)


def _chunks(docs: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(docs), CHUNK):
        yield docs[start:start + CHUNK]


def _batch_rows(batch_id: ObjectId, size: int, user_id: str, created: datetime, rng: random.Random,
                answer_chars: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Items, interactions and chats of one finished batch: 3 rows in 4 alone, the rest in 4-turn chats."""
    items: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    chats: list[dict[str, Any]] = []
    index = 0
    while index < size:
        length = 1 if rng.random() < 0.75 else 4
        label = f"conv-{index}" if length > 1 else None
        chat_id = secrets.token_hex(16)
        chats.append({"_id": chat_id, "userId": user_id, "createdAt": created})
        for turn in range(min(length, size - index)):
            at = created + timedelta(seconds=index * 0.2)
            question = f"Question {index} (turn {turn + 1}): how do I {rng.choice(TOPICS)}?"
            answer = answer_text(index, answer_chars)
            interaction_id = ObjectId()
            items.append(_item(batch_id, index, turn, label, chat_id, question, answer, interaction_id, at))
            turns.append(_interaction(interaction_id, chat_id, user_id, question, answer, at))
            index += 1
    return items, turns, chats


def _item(batch_id: ObjectId, index: int, turn: int, label: str | None, chat_id: str, question: str, answer: str,
          interaction_id: ObjectId, at: datetime) -> dict[str, Any]:
    url = f"https://www.canada.ca/en/page-{index % 50}.html"
    return {
        "_id": ObjectId(), "batchId": batch_id, "rowIndex": index, "rowNumber": index + 2,
        "chatKey": f"label:{label}" if label else f"row:{index}", "chatId": chat_id, "turn": turn,
        "chatLabel": label, "question": question, "piiRedacted": False,
        "referringUrl": url, "original": {"QUESTION": question, "chatId": label or "", "URL": url},
        "status": "succeeded", "attempts": 1, "interactionId": interaction_id, "leaseUntil": None, "notBefore": None,
        "claimId": None, "startedAt": at, "answer": answer, "citationUrl": CITATION, "model": "stub-model",
        "tokens": {"input": 900, "output": len(answer) // 5}, "responseTimeMs": 1200 + index % 800,
        "finishedAt": at + timedelta(seconds=1.2), "error": None,
    }


def _interaction(interaction_id: ObjectId, chat_id: str, user_id: str, question: str, answer: str,
                 at: datetime) -> dict[str, Any]:
    return {
        "_id": interaction_id, "chatId": chat_id, "userId": user_id, "createdAt": at,
        "question": {"redactedText": question, "piiRedacted": False, "piiKinds": [], "language": "en"},
        "answer": {"text": answer, "citationUrl": CITATION, "model": "stub-model", "aiProvider": "openai",
                   "inputTokens": 900, "outputTokens": len(answer) // 5},
        "search": {"provider": "offline", "query": question, "results": [
            {"title": "Benefits", "url": CITATION, "snippet": "Find benefits and services."},
            {"title": "Services", "url": "https://www.canada.ca/en/services.html", "snippet": "Government services."},
        ]},
        "referringUrl": None, "overridesApplied": [], "overrideUserId": None,
        "timings": {"searchMs": 3, "aiMs": 1190, "totalMs": 1200},
    }


def _batch_doc(batch_id: ObjectId, number: int, size: int, user_id: str, created: datetime,
               interactions: list[ObjectId]) -> dict[str, Any]:
    done = created + timedelta(minutes=20)
    return {
        "_id": batch_id, "name": f"stored {number + 1}", "type": "question", "status": "processed",
        "uploaderUserId": user_id, "aiProvider": "openai", "searchProvider": "offline", "pageLanguage": "en",
        "applyOverrides": False, "concurrency": 8, "totalItems": size, "processedItems": size, "failedItems": 0,
        "cancelledItems": 0, "interactions": interactions, "createdAt": created, "updatedAt": done,
        "startedAt": created, "completedAt": done, "stepSeq": 12, "leaseOwner": None, "leaseUntil": None,
        "heartbeatAt": done, "fileName": f"stored-{number + 1}.csv", "fileType": "csv",
        "fileHash": secrets.token_hex(32), "columns": ["QUESTION", "chatId", "URL"], "questionColumn": "QUESTION",
        "chatColumn": "chatId", "urlColumn": "URL", "warnings": [], "lastError": None,
    }
