"""The similar-answer analyzer: does the row's answer say the same as the reference, or has it drifted.

The reference is the baseline batch's answer when there is one, else the file's
`referenceAnswer`; without either every cell is None (nothing to compare, not an
error). A row with a reference but no answer (blocked) has drifted, with score 0.

- With a model: the batch's AI provider judges, from our own prompt (`SYSTEM_PROMPT`),
  replying with one JSON object `{"label", "score", "changedFacts", "winner"}` read
  strictly (`lib.analyzers.judge`); `winner` (`new`, `baseline` or `tie`) is kept only
  when the reference is the baseline's answer.
- Offline (the offline provider, or no provider at all): rapidfuzz's `token_sort_ratio`
  of the two answers (accents folded, the offline label `[Offline answer]` left out),
  as a score from 0 to 1. `same-meaning` when the score is at least
  `SAME_MEANING_THRESHOLD` and no fact changed (`lib.analyzers.facts`); else
  `meaning-drift`. `token_sort_ratio` ignores word order but not added or lost words:
  in the unit tests a paraphrase of the same facts scores 0.88, the same answer with two
  sentences added 0.72, another topic 0.46. Offline, `winner` is `tie` for the same
  meaning and None otherwise (no rule can say which of two drifted answers is better).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz, utils

from lib.analyzers import judge
from lib.analyzers.base import Cells, References, RowResult, empty, errored
from lib.analyzers.facts import changed_facts
from lib.chat.stages.base import NO_USAGE
from lib.chat.stages.offline import is_offline, offline_usage
from lib.providers.base import AIProvider
from lib.providers.offline import LABEL, fold

NAME = "similar-answer"
PREFIX = "similarity"
STAGE = "analyzer.similar-answer"
COLUMNS = ("similarity.label", "similarity.score", "similarity.changedFacts", "similarity.winner",
           "similarity.error")
NEEDS_MODEL = True
SAME, DRIFT = "same-meaning", "meaning-drift"
SAME_MEANING_THRESHOLD = 0.8
MAX_FACTS = 20

SYSTEM_PROMPT = """\
You compare two answers to the same question asked of a Government of Canada help service.
The first is the reference; the second is a new answer. Decide whether the new answer means
the same as the reference for the person who asked: the same steps, conditions, amounts,
dates, deadlines, eligibility and links. Different wording, order or length is not a change
of meaning; a different, missing or added fact is.

Reply with one JSON object and nothing else, with exactly these keys:
{"label": "same-meaning" or "meaning-drift",
 "score": a number from 0 to 1, how close the meanings are (1: identical meaning),
 "changedFacts": a list of short strings, each a fact that differs, is missing from or is
   added to the new answer (an empty list when none),
 "winner": "new", "baseline" or "tie" when the material says the reference is an earlier
   answer (the baseline): which answer serves the person better; null otherwise}"""


class SimilarityVerdict(BaseModel):
    """The judge's reply, exactly: four keys, the right types, nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Literal["same-meaning", "meaning-drift"]
    score: float = Field(ge=0, le=1)
    changed_facts: list[str] = Field(alias="changedFacts", max_length=MAX_FACTS)
    winner: Literal["new", "baseline", "tie"] | None


def unlabelled(text: str) -> str:
    """An answer without the offline provider's label, so that labelled and plain answers compare."""
    stripped = text.strip()
    for label in LABEL.values():
        stripped = stripped.removeprefix(label).strip()
    return stripped


def similarity(reference: str, answer: str) -> float:
    """A deterministic similarity of two texts from 0 to 1 (word order ignored, accents folded)."""
    score = fuzz.token_sort_ratio(fold(unlabelled(reference)), fold(unlabelled(answer)), processor=utils.default_process)
    return round(score / 100, 3)


def offline_cells(reference: str, answer: str, against_baseline: bool) -> dict[str, Any]:
    """The cells from the text similarity and the changed facts alone."""
    score = similarity(reference, answer)
    facts = changed_facts(unlabelled(reference), unlabelled(answer))
    label = SAME if score >= SAME_MEANING_THRESHOLD and not facts else DRIFT
    return {
        "similarity.label": label,
        "similarity.score": score,
        "similarity.changedFacts": facts[:MAX_FACTS],
        "similarity.winner": ("tie" if label == SAME else None) if against_baseline else None,
        "similarity.error": None,
    }


def material(row: RowResult, reference: str, against_baseline: bool) -> str:
    """The judge's user message: the question, the reference (and what it is), the new answer."""
    kind = ("an earlier answer of the same service (the baseline): also name the winner" if against_baseline
            else "the expected answer, written by an expert: winner is null")
    return "\n".join([
        judge.tagged("question", row.question),
        judge.tagged("reference-kind", kind),
        judge.tagged("reference", reference),
        judge.tagged("new-answer", row.answer_text or ""),
    ])


def analyze(row: RowResult, refs: References, ai: AIProvider | None) -> Cells:
    """The similarity cells of a row; a judge that fails fills `similarity.error` only."""
    reference, answer = refs.reference_text, row.answer_text
    if reference is None:
        return Cells(empty(COLUMNS))
    if answer is None:
        return Cells({"similarity.label": DRIFT, "similarity.score": 0.0, "similarity.changedFacts": [],
                      "similarity.winner": "baseline" if refs.against_baseline else None, "similarity.error": None})
    if ai is None or is_offline(ai):
        cells = offline_cells(reference, answer, refs.against_baseline)
        return Cells(cells, offline_usage(reference + " " + answer, "") if ai is not None else NO_USAGE)
    request = judge.build_request(SYSTEM_PROMPT, material(row, reference, refs.against_baseline), row.lang)
    reply = judge.call_judge(ai, STAGE, request, SimilarityVerdict)
    if reply.verdict is None:
        return Cells(errored(COLUMNS, reply.error or judge.JUDGE_MALFORMED), reply.usage)
    verdict = reply.verdict
    return Cells({
        "similarity.label": verdict.label,
        "similarity.score": verdict.score,
        "similarity.changedFacts": list(verdict.changed_facts),
        "similarity.winner": verdict.winner if refs.against_baseline else None,
        "similarity.error": None,
    }, reply.usage)


def passed(columns: dict[str, Any]) -> bool | None:
    """Passes when the meaning is the same; None without a reference or when the judge failed."""
    if columns.get("similarity.error") or columns.get("similarity.label") is None:
        return None
    return columns["similarity.label"] == SAME
