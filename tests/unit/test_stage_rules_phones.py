"""Phone numbers in any format are personal information to redaction stage 1 (issue 10, item 3).

Stage 1 refuses the question and keeps only the masked text, so no digit of the number
reaches the item, the interaction, a search query or the results.
"""

from __future__ import annotations

import re

import pytest

from lib.chat.stages import rules
from lib.chat.stages.base import Blocked


def check(text: str) -> rules.RulesResult | Blocked:
    return rules.run(rules.RulesInput(text, "en"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call 6135550199 please", "call XXX please"),
        ("my cell is 613 5550199", "my cell is XXX"),
        ("text +16135550199 tonight", "text XXX tonight"),
        ("my UK number is +44 20 7946 0958.", "my UK number is XXX."),
        ("office: 613.555.0199 ext. 12, mornings", "office: XXX, mornings"),
        ("(613)555-0199", "XXX"),
        ("tel +1 (613) 555-0199 x 12", "tel XXX"),
        ("Mon numéro est le 819 555-0123.", "Mon numéro est le XXX."),
        ("call 819-555-0123 or 514 555 0123", "call XXX or XXX"),
        ("my number is 123-456-7890", "my number is XXX"),  # not a real area code: still refused
    ],
)
def test_a_phone_number_in_any_format_refuses_the_question_and_only_its_mask_is_kept(text, expected):
    result = check(text)

    assert isinstance(result, Blocked) and result.by == "piStage1"
    assert result.masked_text == expected
    assert not re.search(r"\d{3}", result.masked_text.replace("XXX", ""))


@pytest.mark.parametrize(
    "text",
    [
        "It costs $1,500 in 2024.",
        "Le montant est de 1 000 000 $.",
        "I earned 52,345.67 in box 14 of my 2023 T4.",
        "Is form T2125 still used?",
        "Where do I send the IMM 5257?",
        "001. Renew 002. Apply 003. Pay",
        "Form 5000-S1, line 10100",
        "Is the TD1 for 2024-2025 out?",
        "Between 2019 and 2024, on 2024-03-01 or 12/05/2024",
    ],
)
def test_amounts_years_form_and_list_numbers_are_not_phones(text):
    assert not isinstance(check(text), Blocked)


@pytest.mark.parametrize("text", ["card 4111 1111 1111 1111 please", "my card 4111-1111-1111-1111", "4111111111111111"])
def test_a_card_number_refuses_the_question_and_no_digit_of_it_is_kept(text):
    result = check(text)

    assert isinstance(result, Blocked) and "4111" not in result.masked_text
