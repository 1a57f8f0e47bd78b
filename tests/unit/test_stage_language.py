"""Stage 4: language detection (ISO 639-3, with zxx / und blocks) and the translation reply."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from lib.chat.stages import language
from lib.chat.stages.base import Blocked, BlockedBy, StageReplyError
from lib.chat.stages.language import LanguageInput, LanguageResult, detect, parse_reply
from lib.providers.offline import OfflineAI
from tests.support.stage_fakes import ScriptedAI

QUESTIONS = Path(__file__).resolve().parents[1] / "data" / "language_questions.csv"
# Measured on the file: 36/36 English, 36/36 French, 22/22 others (with the eng/fra prior).
MIN_ACCURACY = {"eng": 0.95, "fra": 0.95, "other": 0.9}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Comment renouveler mon passeport?", "fra"),
        ("Date limite des impôts", "fra"),
        ("How do I renew my passport?", "eng"),
        ("Canada pension plan disability", "eng"),
        ("¿Cómo renuevo mi pasaporte canadiense?", "spa"),
        ("Wie beantrage ich ein Visum für Kanada?", "deu"),
        ("كيف أجدد جواز سفري الكندي؟", "ara"),
        ("如何更新我的加拿大护照？", "zho"),
        ("Como renovo meu passaporte canadense?", "por"),
    ],
)
def test_languages_come_out_as_iso_639_3_codes(text, code):
    assert detect(text).language == code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("asdkjh qwpoeiru zxmcnv bnmq", "zxx"),
        ("xkcd qwrtz plmkn", "zxx"),
        ("aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNl", "zxx"),
        ("!!!???### $$$ %%%", "zxx"),
        ("123 456 789 000", "zxx"),
        ("ok", "und"),
        ("?", "und"),
    ],
)
def test_text_without_a_language_is_obfuscated_or_undetermined(text, code):
    assert detect(text).language == code


def test_per_language_accuracy_on_the_evaluation_file_meets_the_floor(capsys):
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    with QUESTIONS.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            group = row["language"] if row["language"] in ("eng", "fra") else "other"
            counts[group][1] += 1
            counts[group][0] += detect(row["question"]).language == row["language"]

    accuracy = {group: right / total for group, (right, total) in counts.items()}
    with capsys.disabled():
        print("\nlanguage accuracy:", {g: f"{r}/{t}" for g, (r, t) in sorted(counts.items())})
    assert counts["eng"][1] >= 25 and counts["fra"][1] >= 25 and counts["other"][1] >= 10
    for group, floor in MIN_ACCURACY.items():
        assert accuracy[group] >= floor, (group, accuracy[group])


@pytest.mark.parametrize(("text", "blocked_by"), [
    ("asdkjh qwpoeiru zxmcnv bnmq", BlockedBy.OBFUSCATED), ("ok ?", BlockedBy.UNDETERMINED)])
def test_obfuscated_and_undetermined_questions_block_without_a_model_call(text, blocked_by):
    ai = ScriptedAI()

    outcome = language.run(LanguageInput(text), ai)

    assert isinstance(outcome, Blocked) and outcome.by is blocked_by
    assert ai.requests == []


def test_an_english_question_is_not_translated():
    ai = ScriptedAI()

    outcome = language.run(LanguageInput("How do I renew my passport?"), ai)

    assert outcome == LanguageResult("eng", outcome.confidence, "How do I renew my passport?")
    assert ai.requests == []


def test_a_french_question_is_translated_by_the_model():
    ai = ScriptedAI("<translation>How do I renew my passport?</translation>")

    outcome = language.run(LanguageInput("Comment renouveler mon passeport?", "fr"), ai)

    assert isinstance(outcome, LanguageResult)
    assert (outcome.language, outcome.english_question, outcome.translated) == ("fra", "How do I renew my passport?",
                                                                                True)
    assert outcome.usage.model == "fake-model"


def test_the_offline_stage_keeps_the_text_and_says_it_is_untranslated():
    outcome = language.run(LanguageInput("Comment renouveler mon passeport?", "fr"), OfflineAI())

    assert isinstance(outcome, LanguageResult)
    assert outcome.english_question == "Comment renouveler mon passeport?"
    assert outcome.untranslated is True and outcome.translated is False


@pytest.mark.parametrize(
    "reply",
    ["How do I renew my passport?", "<translation></translation>", "Sure! <translation>x</translation>",
     "<translation>x</translation> hope it helps", "<translation>unclosed"],
)
def test_a_malformed_translation_reply_raises_a_stage_reply_error(reply):
    with pytest.raises(StageReplyError):
        parse_reply(reply)


def test_a_translation_reply_may_span_lines_and_is_trimmed():
    assert parse_reply("\n<translation>\n How long?\n</translation>\n") == "How long?"
