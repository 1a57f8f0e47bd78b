import pytest

from lib.chat.prompts import build_system_prompt, parse_answer
from lib.chat.redaction import redact
from lib.models import PromptOverride
from lib.providers.base import SearchResult


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("write to jane.doe+x@example.gc.ca please", "write to [EMAIL] please", "email"),
        ("my SIN is 123 456 789", "my SIN is [SIN]", "sin"),
        ("my SIN is 123-456-789.", "my SIN is [SIN].", "sin"),
        ("sin 123456789", "sin [SIN]", "sin"),
        ("call me at (613) 555-0199", "call me at [PHONE]", "phone"),
        ("call +1 613 555 0199 today", "call [PHONE] today", "phone"),
        ("card 4111 1111 1111 1111 expired", "card [CARD NUMBER] expired", "card"),
        ("card 4111-1111-1111-1111", "card [CARD NUMBER]", "card"),
        ("I live near K1A 0B1", "I live near [POSTAL CODE]", "postal_code"),
        ("postal code h3z2y7", "postal code [POSTAL CODE]", "postal_code"),
    ],
)
def test_personal_information_is_masked_with_a_placeholder_of_its_kind(text, expected, kind):
    result = redact(text)
    assert result.text == expected
    assert result.redacted is True
    assert kind in result.kinds


@pytest.mark.parametrize(
    "text",
    ["How many weeks of EI can I get in 2025?", "Is form RC66 still used?", "Flight AC 123 to Ottawa", "[EMAIL] [SIN]"],
)
def test_ordinary_questions_and_redacted_text_are_left_alone(text):
    result = redact(text)
    assert result.text == text
    assert result.redacted is False


def test_the_citation_line_is_taken_out_of_the_answer():
    parsed = parse_answer("Renew online.\n<citation-url>https://www.canada.ca/en/passport.html</citation-url>")
    assert parsed.text == "Renew online."
    assert parsed.citation_url == "https://www.canada.ca/en/passport.html"


def test_an_answer_without_a_citation_or_with_a_non_http_one_has_no_citation_url():
    assert parse_answer("Just text").citation_url is None
    assert parse_answer("x <citation-url>javascript:alert(1)</citation-url>").citation_url is None


def test_the_french_system_prompt_is_in_french_and_carries_the_search_results_and_referrer():
    results = [SearchResult(title="Passeports", url="https://www.canada.ca/fr/passeports.html", snippet="Renouveler")]
    prompt = build_system_prompt("fr", results, "https://www.canada.ca/fr.html")
    assert "Répondez en français" in prompt
    assert "https://www.canada.ca/fr/passeports.html" in prompt
    assert "https://www.canada.ca/fr.html" in prompt


def test_a_system_prompt_override_replaces_the_base_and_other_overrides_are_added():
    overrides = [PromptOverride(key="systemPrompt", text="BASE OVERRIDE"), PromptOverride(key="tone", text="Be brief.")]
    prompt = build_system_prompt("en", [], None, overrides)
    assert prompt.startswith("BASE OVERRIDE")
    assert "[tone] Be brief." in prompt
    assert "You are AI Answers" not in prompt
