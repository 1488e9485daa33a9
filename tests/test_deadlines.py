"""engine.deadlines: an offer's expires_at, Jalali or Gregorian, in the settings' timezone."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

UTC = timezone.utc


def offer_config(tmp_path, offer: str, timezone_name: str = "Asia/Tehran"):
    """A config folder whose one sequence has the offer lines ``offer`` (YAML, indented under ``offer:``)."""
    cfg = tmp_path / "config"
    (cfg / "sequences").mkdir(parents=True)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.sms.j2").write_text("کد {{ offer.code }} تا {{ offer.expires_at | jalali }}",
                                                     encoding="utf-8")
    (cfg / "settings.yaml").write_text(
        f"database_url: sqlite:///{tmp_path}/t.db\ntemplates_dir: ../templates\ntimezone: {timezone_name}\n"
        "providers: {sms: [{name: m, type: memory}]}\n", encoding="utf-8")
    touches = "".join(f"  - {{name: t{i}, after: 1h, channel: sms, template: t.sms.j2}}\n" for i in range(3))
    (cfg / "sequences" / "s.yaml").write_text(f"name: s\noffer:\n  code: W20\n  title: coats\n{offer}touches:\n"
                                              f"{touches}", encoding="utf-8")
    return cfg


def load_problems(cfg) -> list[str]:
    from engine.config import load_config
    from engine.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    return [p.message for p in caught.value.problems]


@pytest.mark.parametrize("offer, timezone_name, expected_utc", [
    ("  expires_at: 1405-09-20 23:59\n", "Asia/Tehran", datetime(2026, 12, 11, 20, 29, tzinfo=UTC)),
    ("  expires_at: ۱۴۰۵-۰۹-۲۰ ۲۳:۵۹\n", "Asia/Tehran", datetime(2026, 12, 11, 20, 29, tzinfo=UTC)),
    ("  expires_at: 1405-09-20 23:59:00\n", "Asia/Tehran", datetime(2026, 12, 11, 20, 29, tzinfo=UTC)),  # a YAML datetime
    ("  expires_at: 1405-09-20 23:59\n", "Europe/Berlin", datetime(2026, 12, 11, 22, 59, tzinfo=UTC)),
    ("  expires_at: 1405-09-20T23:59+00:00\n", "Asia/Tehran", datetime(2026, 12, 11, 23, 59, tzinfo=UTC)),
    ("  expires_at: 1405-02-31 10:00\n", "Asia/Tehran", datetime(2026, 5, 21, 6, 30, tzinfo=UTC)),  # no Gregorian 31/2
    ("  expires_at: 2026-12-11 23:59\n", "Asia/Tehran", datetime(2026, 12, 11, 20, 29, tzinfo=UTC)),
    ("  expires_at: 2026-12-11T23:59:00+03:30\n", "UTC", datetime(2026, 12, 11, 20, 29, tzinfo=UTC)),
    ("  calendar: jalali\n  expires_at: 1500-01-01 00:00\n", "UTC", datetime(2121, 3, 21, tzinfo=UTC)),
    ("  calendar: gregorian\n  expires_at: 1405-09-20 23:59\n", "UTC", datetime(1405, 9, 20, 23, 59, tzinfo=UTC)),
])
def test_offer_expires_at_reads_jalali_years_in_the_settings_timezone(tmp_path, offer, timezone_name, expected_utc):
    from engine.config import load_config

    config = load_config(offer_config(tmp_path, offer, timezone_name))
    assert config.sequences["s"].offer.expires_at == expected_utc


@pytest.mark.parametrize("offer, says", [
    ("  expires_at: 2026-12-11\n", "'2026-12-11' has no time of day; add one, e.g. '2026-12-11 23:59'"),
    ("  expires_at: 1405-12-30 23:59\n", "'1405-12-30 23:59' is not a time in the Jalali calendar: day is out of range"),
    ("  expires_at: soon\n", "'soon' is not a date and time; write it like 1405-09-20 23:59 (Jalali) or "
                              "2026-12-11 23:59 (Gregorian)"),
    ("  calendar: persian\n  expires_at: 1405-09-20 23:59\n", "'persian': use jalali or gregorian"),
])
def test_a_bad_offer_deadline_is_one_message_without_python_reprs(tmp_path, offer, says):
    problems = load_problems(offer_config(tmp_path, offer))
    assert len(problems) == 1 and problems[0].startswith(says), problems
    assert "datetime." not in problems[0]


def test_validate_says_an_ended_offer_in_both_calendars(tmp_path):
    from freezegun import freeze_time

    from engine.validate import validate

    with freeze_time("2026-12-12 00:00:00"):
        _, problems = validate(offer_config(tmp_path, "  expires_at: 1405-09-20 23:59\n"))
    ended = [p.message for p in problems if p.key == "offer.expires_at"]
    assert ended == ["the offer ended at 2026-12-11 23:59 Asia/Tehran (Jalali 1405-09-20 23:59); urgent touches will "
                     "all be skipped — move the deadline or remove the offer"], problems
