"""The expert-scorer analyzer: does the answer carry the key ideas of the reference answer.

The reference is the baseline batch's answer when there is one, else the file's
`referenceAnswer`; without either every cell is None. Columns: `verdict` (`pass`,
`fail`, `needs-review`), `ideasFound` and `ideasMissing` (the reference's key ideas),
`answerTypeOk`, and `score` (the share of key ideas found, 0 to 1).

`answerTypeOk`: a question that has a reference answer deserves a normal answer, so the
check is that the answer type is `normal` (an answer wrapped as `not-gc`, `pt-muni` or
`clarifying-question` where a reference answers the question fails; ai-answers.md §5).
A row with a reference but no answer (blocked) fails, every idea missing.

- With a model: the batch's AI provider judges, from our own prompt, replying with one
  JSON object `{"verdict", "ideasFound", "ideasMissing", "answerTypeOk"}` read strictly.
- Offline (the offline provider, or no provider): `key_ideas` cuts the reference into
  sentences and clauses (at `.`, `!`, `?`, `;` or a line break); an idea is its content
  words (accents folded, stop words and words of one or two letters left out, plurals
  stripped: `lib.providers.offline.tokenize`). An idea is found when at least
  `IDEA_FOUND_SHARE` of its content words are in the answer and every number it states
  is. Verdict: `pass` when every idea is found, `fail` when none or fewer than half are
  (or the answer type is wrong), `needs-review` in between (half counts as review).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lib.analyzers import judge
from lib.analyzers.base import Cells, References, RowResult, empty, errored
from lib.analyzers.similar_answer import unlabelled
from lib.chat.stages.answer import NORMAL
from lib.chat.stages.base import NO_USAGE, page_lang
from lib.chat.stages.offline import is_offline, offline_usage
from lib.providers.base import AIProvider
from lib.providers.offline import tokenize

NAME = "expert-scorer"
PREFIX = "expert"
STAGE = "analyzer.expert-scorer"
COLUMNS = ("expert.verdict", "expert.ideasFound", "expert.ideasMissing", "expert.answerTypeOk", "expert.score",
           "expert.error")
NEEDS_MODEL = True
PASS, FAIL, REVIEW = "pass", "fail", "needs-review"
IDEA_FOUND_SHARE = 0.6
MAX_IDEAS = 20
_CLAUSE_END = re.compile(r"(?<=[.!?;])\s+|\s*\n\s*")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")

SYSTEM_PROMPT = """\
You are a subject-matter expert who checks answers given by a Government of Canada help service
against a reference answer written or approved by experts.
First list the key ideas of the reference answer: each fact, step, condition, amount, date or
link that a person needs. Then decide, for each key idea, whether the new answer states it
(in any wording) or misses it. Check also the new answer's type: a question the reference
answers deserves a normal answer, not one saying it is not a federal matter, a provincial,
territorial or municipal matter, or a question back.

Reply with one JSON object and nothing else, with exactly these keys:
{"verdict": "pass" (every key idea is there and nothing contradicts the reference),
   "fail" (key ideas are wrong, contradicted or mostly missing, or the type is wrong) or
   "needs-review" (some key ideas are missing, or you are unsure),
 "ideasFound": a list of short strings, the key ideas the new answer states,
 "ideasMissing": a list of short strings, the key ideas it misses or gets wrong,
 "answerTypeOk": true or false}"""


class ExpertVerdict(BaseModel):
    """The judge's reply, exactly: four keys, the right types, nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verdict: Literal["pass", "fail", "needs-review"]
    ideas_found: list[str] = Field(alias="ideasFound", max_length=MAX_IDEAS)
    ideas_missing: list[str] = Field(alias="ideasMissing", max_length=MAX_IDEAS)
    answer_type_ok: bool = Field(alias="answerTypeOk")


@dataclass(frozen=True)
class Idea:
    """One key idea of the reference: the clause as written and its content words."""

    text: str
    words: frozenset[str]


def content_words(text: str, lang: str) -> frozenset[str]:
    """The words of a text that carry its meaning (folded, no stop words, no plurals)."""
    return frozenset(w for w in tokenize(text, lang) if len(w) > 2 or w.isdigit())


def key_ideas(reference: str, lang: str) -> list[Idea]:
    """The reference's sentences and clauses that hold at least one content word, in order."""
    ideas = []
    for clause in _CLAUSE_END.split(unlabelled(reference)):
        text = _BULLET.sub("", clause).strip()
        words = content_words(text, lang)
        if words and all(idea.words != words for idea in ideas):
            ideas.append(Idea(text, words))
    return ideas[:MAX_IDEAS]


def is_found(idea: Idea, answer_words: frozenset[str]) -> bool:
    """Whether the answer holds enough of the idea's words, and every one of its numbers."""
    numbers = {w for w in idea.words if w.isdigit()}
    share = len(idea.words & answer_words) / len(idea.words)
    return share >= IDEA_FOUND_SHARE and numbers <= answer_words


def verdict_of(found: int, total: int, answer_type_ok: bool) -> str:
    """pass (all found), fail (none, fewer than half, or a wrong answer type), needs-review (between)."""
    if not answer_type_ok or found == 0 or 2 * found < total:
        return FAIL
    return PASS if found == total else REVIEW


def offline_cells(reference: str, row: RowResult) -> dict[str, Any]:
    """The cells from the key ideas of the reference found in the answer (no model)."""
    lang = page_lang(row.lang)  # "fra" (a question language) reads as French too
    ideas = key_ideas(reference, lang)
    answer = row.answer_text
    answer_words = content_words(unlabelled(answer), lang) if answer else frozenset()
    hits = [is_found(idea, answer_words) for idea in ideas]
    found = [idea.text for idea, hit in zip(ideas, hits, strict=True) if hit]
    missing = [idea.text for idea, hit in zip(ideas, hits, strict=True) if not hit]
    type_ok = answer is not None and (row.answer_type or NORMAL) == NORMAL
    if not ideas:  # a reference with nothing to look for ("Yes."): a person decides
        verdict, score = (REVIEW if type_ok else FAIL), None
    else:
        verdict, score = verdict_of(len(found), len(ideas), type_ok), round(len(found) / len(ideas), 3)
    return {"expert.verdict": verdict, "expert.ideasFound": found, "expert.ideasMissing": missing,
            "expert.answerTypeOk": type_ok, "expert.score": score, "expert.error": None}


def material(row: RowResult, reference: str) -> str:
    """The judge's user message: the question, the reference answer, the new answer and its type."""
    return "\n".join([
        judge.tagged("question", row.question),
        judge.tagged("reference-answer", reference),
        judge.tagged("answer-type", row.answer_type or NORMAL),
        judge.tagged("new-answer", row.answer_text or ""),
    ])


def analyze(row: RowResult, refs: References, ai: AIProvider | None) -> Cells:
    """The expert cells of a row; a judge that fails fills `expert.error` only."""
    reference = refs.reference_text
    if reference is None:
        return Cells(empty(COLUMNS))
    if row.answer_text is None or ai is None or is_offline(ai):
        cells = offline_cells(reference, row)
        offline = ai is not None and row.answer_text is not None
        return Cells(cells, offline_usage(reference + " " + (row.answer_text or ""), "") if offline else NO_USAGE)
    request = judge.build_request(SYSTEM_PROMPT, material(row, reference), row.lang)
    reply = judge.call_judge(ai, STAGE, request, ExpertVerdict)
    if reply.verdict is None:
        return Cells(errored(COLUMNS, reply.error or judge.JUDGE_MALFORMED), reply.usage)
    verdict = reply.verdict
    judged = len(verdict.ideas_found) + len(verdict.ideas_missing)
    return Cells({
        "expert.verdict": verdict.verdict,
        "expert.ideasFound": list(verdict.ideas_found),
        "expert.ideasMissing": list(verdict.ideas_missing),
        "expert.answerTypeOk": verdict.answer_type_ok,
        "expert.score": round(len(verdict.ideas_found) / judged, 3) if judged else None,
        "expert.error": None,
    }, reply.usage)


def passed(columns: dict[str, Any]) -> bool | None:
    """Passes on the verdict `pass`; None without a reference or when the judge failed."""
    if columns.get("expert.error") or columns.get("expert.verdict") is None:
        return None
    return columns["expert.verdict"] == PASS
