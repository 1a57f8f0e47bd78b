"""Stage 7: the department, from the model's one-key reply or from URLs, with the referrer as fallback."""

from __future__ import annotations

import json

import pytest

from lib.chat.stages import department
from lib.chat.stages.base import StageReplyError
from lib.chat.stages.data import DATA_DIR
from lib.chat.stages.department import DepartmentInput, department_for_url, departments, parse_reply
from lib.providers.offline import CORPUS_DIR, OfflineAI
from tests.support.stage_fakes import ScriptedAI, result


def test_the_department_list_is_the_shared_one_shipped_inside_the_package():
    shipped = json.loads((DATA_DIR / "departments.json").read_text(encoding="utf-8"))

    assert len(departments()) == len(shipped["departments"]) > 200
    assert departments()["CRA-ARC"].url("fr") == "https://www.canada.ca/fr/agence-revenu.html"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://www.canada.ca/en/revenue-agency/services/tax.html", "CRA-ARC"),
        ("https://www.canada.ca/fr/agence-revenu.html", "CRA-ARC"),
        ("https://www.canada.ca/en/services/taxes/income-tax/personal-income-tax.html", "CRA-ARC"),
        ("https://www.canada.ca/en/services/benefits/ei/ei-regular-benefit.html", "EDSC-ESDC"),
        ("https://www.canada.ca/en/immigration-refugees-citizenship/services/canadian-passports.html", "IRCC"),
        ("https://www.canada.ca/en/border-services-agency/services/nexus.html", "CBSA-ASFC"),
        ("https://www.cbsa-asfc.gc.ca/travel-voyage/menu-eng.html", "CBSA-ASFC"),
        ("https://ised-isde.canada.ca/site/canadian-intellectual-property-office/en/patents", "CIPO-OPIC"),
        ("https://agriculture.canada.ca/en/programs", "AAFC-AAC"),
        ("https://www.canada.ca/en/services/benefits/dental/dental-care-plan.html", "HC-SC"),
    ],
)
def test_a_url_belongs_to_the_department_with_the_longest_matching_prefix(url, key):
    found = department_for_url(url)

    assert found is not None and found.key == key


@pytest.mark.parametrize("url", ["https://www.canada.ca/en.html", "https://example.com/x", "", None])
def test_canada_ca_itself_and_foreign_sites_belong_to_no_department(url):
    assert department_for_url(url) is None


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_offline_corpus_page_maps_to_a_department(lang):
    pages = json.loads((CORPUS_DIR / f"{lang}.json").read_text(encoding="utf-8"))["pages"]

    assert [p["url"] for p in pages if department_for_url(p["url"]) is None] == []


def test_the_offline_pick_is_the_top_results_department_in_the_page_language():
    inp = DepartmentInput("How do I file?", "fr", (result("https://www.canada.ca/en/services/taxes/x.html"),))

    outcome = department.run(inp, OfflineAI())

    assert (outcome.department, outcome.source) == ("CRA-ARC", "search")
    assert outcome.department_url == "https://www.canada.ca/fr/agence-revenu.html"


def test_without_results_the_referring_pages_department_is_the_fallback():
    inp = DepartmentInput("How do I apply?", referring_url="https://www.canada.ca/en/services/benefits/ei.html")

    outcome = department.run(inp, OfflineAI())

    assert (outcome.department, outcome.source) == ("EDSC-ESDC", "referrer")


def test_the_model_reply_is_one_key_of_the_list_in_any_case():
    ai = ScriptedAI(" ircc \n")

    outcome = department.run(DepartmentInput("How do I renew my passport?"), ai)

    assert (outcome.department, outcome.source) == ("IRCC", "model")
    assert "CRA-ARC: Canada Revenue Agency / Agence du revenu du Canada" in ai.requests[0].system


def test_a_model_that_names_none_falls_back_on_the_referring_page():
    inp = DepartmentInput("How do I apply?", referring_url="https://www.canada.ca/en/revenue-agency.html")

    outcome = department.run(inp, ScriptedAI("none"))

    assert (outcome.department, outcome.source) == ("CRA-ARC", "referrer")


@pytest.mark.parametrize("reply", ["CRA", "The CRA-ARC", "CRA-ARC, IRCC", "", "<department>CRA-ARC</department>"])
def test_a_reply_that_is_not_exactly_one_key_or_none_is_malformed(reply):
    with pytest.raises(StageReplyError):
        parse_reply(reply)
