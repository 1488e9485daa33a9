"""The honest-urgency lint: every template, not only urgent touches, is checked for literal scarcity and
deadline claims; a policy («تعویض سایز تا ۷ روز رایگان») passes; a touch may waive a phrase with its reason."""
from __future__ import annotations

import pytest

from engine.claims import literal_urgency
from tests.test_cli import REMINDER, WINTER, Project, project, starter  # noqa: F401  (fixtures)


@pytest.mark.parametrize("source, found", [
    ("فقط ۳ عدد باقی مانده!", [(1, "فقط 3")]),
    ("Only 2 left in stock", [(1, "Only 2")]),
    ("5 left, order now", [(1, "5 left")]),
    ("Offer ends in 2 days", [(1, "2 days")]),
    ("۲۰٪ تخفیف تا ۳ روز دیگر", [(1, "3 روز")]),
    ("سلام\n۴۸ ساعت مانده تا پایان حراج", [(2, "48 ساعت")]),
    ("فقط امروز!", [(1, "فقط امروز")]),
    ("<p>Hurry: <b>only 5</b> seats</p>", [(1, "only 5")]),
])
def test_literal_claims_are_found_with_their_line(source, found):
    assert literal_urgency(source) == found


@pytest.mark.parametrize("source", [
    "تعویض سایز تا ۷ روز رایگان",
    "Free returns within 30 days.",
    "ارسال ۲ روز کاری؛ {{ offer.title }}",
    "بیش از ۵۰۰ عدد فروخته شد",
    "پشم بالای ۷۰٪ گرم‌تر است",
    "فقط {{ offer.time_left | duration }} مانده و {{ offer.stock_left | fa_digits }} عدد باقی است",
    "{% if offer.stock_left < 10 %}only {{ offer.stock_left }} left{% endif %}",
])
def test_policies_and_numbers_from_the_offer_are_not_claims(source):
    assert literal_urgency(source) == []


def waive(project: Project, entry: str) -> None:
    """Give the winter-sale reminder touch ``allow_claims: [ENTRY]``."""
    project.edit(WINTER, "    template: winter-sale/reminder.sms.j2\n",
                 f"    template: winter-sale/reminder.sms.j2\n    allow_claims: [{entry}]\n")


def test_a_plain_touch_with_a_literal_stock_claim_fails_validate_at_file_and_line(project: Project):
    project.write(REMINDER, "{{ contact.first_name }} جان، پالتو هنوز هست.\nفقط ۳ عدد باقی مانده!\n")
    result = project.run("validate")
    assert result.rc == 2, result
    line = [p for p in result.problems if "فقط 3" in p]
    assert len(line) == 1, result
    assert line[0].startswith(f"{REMINDER}:2: literal countdown or quantity 'فقط 3' in a template "
                              "(winter-sale touch 'reminder')"), result


def test_a_return_policy_passes_validate(project: Project):
    project.write(REMINDER, "{{ contact.first_name }} جان، تعویض سایز تا ۷ روز رایگان. کد {{ offer.code }}\n")
    result = project.run("validate")
    assert result.rc == 0, result
    assert result.err == ""


def test_allow_claims_waives_a_named_phrase_with_its_reason(project: Project):
    project.write(REMINDER, "{{ contact.first_name }} جان، فقط ۷ روز مهلت تعویض دارید. کد {{ offer.code }}\n")
    assert project.run("validate").rc == 2
    waive(project, '{text: "فقط ۷ روز", why: "return policy"}')
    result = project.run("validate")
    assert result.rc == 0, result


def test_a_waiver_covers_only_the_phrase_it_names(project: Project):
    project.write(REMINDER, "فقط ۷ روز مهلت تعویض دارید. فقط ۲ عدد باقی است. {{ offer.code }}\n")
    waive(project, '{text: "۷ روز", why: "return policy"}')
    result = project.run("validate")
    assert result.rc == 2, result
    assert [p for p in result.problems if "literal countdown" in p] == [
        p for p in result.problems if p.startswith(f"{REMINDER}:1: literal countdown or quantity 'فقط 2'")], result


def test_allow_claims_without_a_reason_is_refused_where_it_is_written(project: Project):
    waive(project, '{text: "۷ روز"}')
    result = project.run("validate")
    assert result.rc == 2, result
    line = project.line_of(WINTER, "allow_claims:")
    assert any(p.startswith(f"{WINTER}:{line}: touches[2].allow_claims[0].why: is required") for p in result.problems), result


def test_a_waiver_that_matches_nothing_is_a_warning(project: Project):
    waive(project, '{text: "۹ روز", why: "return policy"}')
    result = project.run("validate")
    assert result.rc == 0, result
    assert any("warning: '۹ روز' waives no claim in winter-sale/reminder.sms.j2" in p for p in result.problems), result
