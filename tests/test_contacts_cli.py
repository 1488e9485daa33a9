"""``followup contacts list|show|forget``: contacts by tag or sequence, one in full, and erasure."""
from __future__ import annotations

import json
import sqlite3

from tests.test_cli import (ALI, JOHN, SARA, Project, first_upgrade, migrated_db, populated,  # noqa: F401  (fixtures)
                            populated_db, starter)


def rows(project: Project, sql: str) -> list[tuple]:
    with sqlite3.connect(project.db) as conn:
        return conn.execute(sql).fetchall()


def listed_ids(result) -> list[int]:
    return [int(line.split()[0]) for line in result.out.splitlines()[1:]
            if line.split() and line.split()[0].isdigit() and not line.endswith("contact(s)")]


def test_list_by_tag_and_by_sequence(populated: Project):
    everyone = populated.run("contacts", "list")
    assert everyone.rc == 0, everyone
    assert listed_ids(everyone) == [ALI, SARA, JOHN]
    assert "+98912***4567" in everyone.out and "+989121234567" not in everyone.out  # masked as in logs
    assert listed_ids(populated.run("contacts", "list", "--tag", "winter")) == [ALI, SARA]
    assert populated.run("contacts", "list", "--sequence", "winter-sale").out.strip() == "no contacts match"
    assert populated.run("enroll", "winter-sale", "--contact", "+989127654321").rc == 0
    assert listed_ids(populated.run("contacts", "list", "--sequence", "winter-sale")) == [SARA]
    assert listed_ids(populated.run("contacts", "list", "--tag", "vip", "--sequence", "winter-sale")) == []


def test_show_has_attributes_consents_and_enrollments(populated: Project):
    assert populated.run("enroll", "winter-sale", "--contact", "ali@example.com").rc == 0
    assert populated.run("event", "ali@example.com", "unsubscribed", "--channel", "email").rc == 0
    result = populated.run("contacts", "show", "crm-1", "--json")
    assert result.rc == 0, result
    detail = json.loads(result.out)
    assert (detail["phone"], detail["email"], detail["tags"]) == ("+989121234567", "ali@example.com", ["vip", "winter"])
    assert detail["consents"]["sms"] == "allowed"
    assert detail["consents"]["email"].startswith("unsubscribed (cli, ")
    [enrollment] = detail["enrollments"]
    assert (enrollment["sequence"], enrollment["status"]) == ("winter-sale", "active")
    assert enrollment["messages"] == {"scheduled": 1, "pending": 3}
    text = populated.run("contacts", "show", "0912 123 4567")
    assert "  phone: +989121234567" in text.out and "  email: unsubscribed (cli, " in text.out, text
    assert "  winter-sale (version " in text.out and "active, enrolled " in text.out, text


def test_show_of_an_unknown_key_says_how_to_name_a_contact(populated: Project):
    result = populated.run("contacts", "show", "nobody@example.com")
    assert result.rc == 2
    assert "no contact matches 'nobody@example.com' (a phone in any format, an email, an external id or #ID)" in result.err


def test_forget_erases_personal_data_keeps_counts_and_cancels_pending_messages(populated: Project):
    assert populated.run("enroll", "winter-sale", "--tag", "winter").rc == 0
    assert populated.run("event", "crm-1", "converted", "--value", "1200000", "--sequence", "winter-sale").rc == 0
    assert populated.run("enroll", "welcome-en", "--contact", "crm-1").rc == 0
    with sqlite3.connect(populated.db) as conn:  # a provider's error that quoted the address
        conn.execute(f"update messages set status = 'failed', reason = 'invalid recipient +989121234567' "
                     f"where contact_id = {ALI} and touch = 'hello'")
    result = populated.run("contacts", "forget", "ali@example.com", "--yes")
    assert result.rc == 0, result
    assert "contact 1: personal data erased; 1 enrollment(s) ended" in result.out
    [contact] = rows(populated, f"select phone, email, external_id, first_name, last_name, tags, attrs, sms_suppressed "
                                f"from contacts where id = {ALI}")
    assert contact[:7] == (None, None, None, "", "", "", "{}")
    assert contact[7].startswith("erased ")
    # the welcome enrollment was active: its open messages are cancelled with the reason
    assert rows(populated, f"select distinct status, reason from messages where contact_id = {ALI} "
                           "and sequence = 'welcome-en'") == [("cancelled", "contact erased (followup contacts forget)")]
    # anonymous counts stay: both enrollments, the conversion and its value
    assert rows(populated, f"select count(*) from enrollments where contact_id = {ALI}") == [(2,)]
    assert rows(populated, f"select reason from messages where contact_id = {ALI} and touch = 'hello'") == [
        ("invalid recipient [erased]",)]
    assert rows(populated, f"select type, value from contact_events where contact_id = {ALI} and type = 'converted'") \
        == [("converted", 1200000.0)]
    stats = json.loads(populated.run("stats", "winter-sale", "--json").out)["sequences"][0]
    assert (stats["enrolled"], stats["converted"]) == (2, 1)
    assert rows(populated, f"select event from delivery_log where contact_id = {ALI} and event = 'erased'") == [("erased",)]
    # nobody is found by the old keys any more; #ID shows the erased contact
    assert populated.run("contacts", "show", "ali@example.com").rc == 2
    shown = populated.run("contacts", "show", f"#{ALI}")
    assert shown.out.startswith(f"contact {ALI} (erased)"), shown
    assert "ali" not in shown.out.lower() and "9121234567" not in shown.out
    again = populated.run("contacts", "forget", f"#{ALI}", "--yes")
    assert again.rc == 2 and "already erased" in again.err


def test_forget_asks_first_and_changes_nothing_when_not_confirmed(populated: Project):
    result = populated.run("contacts", "forget", "crm-2")
    assert result.rc == 130, result
    assert rows(populated, f"select phone from contacts where id = {SARA}") == [("+989127654321",)]
