"""engine.fields: one length limit per contact field, shared by the CSV import and the API; and
engine.sequences' max_sms_segments, read and checked with its line."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("field", ["phone", "email", "first_name", "last_name", "timezone", "locale", "external_id"])
def test_the_csv_import_and_the_api_share_each_fields_length_limit(field):
    from pydantic import ValidationError

    from engine.contacts import parse_row
    from engine.fields import MAX_LENGTH
    from engine.service.schemas import ContactIn

    limit = MAX_LENGTH[field]
    too_long = {"phone": "09121234567", field: "x" * (limit + 1)}
    with pytest.raises(ValueError) as refused:
        parse_row(too_long, "IR")
    assert str(refused.value) == f"{field}: {limit + 1:,} characters, over the limit of {limit:,}; shorten it"
    with pytest.raises(ValidationError):
        ContactIn(**too_long)
    at_limit = {"phone": "09121234567", field: "x" * limit}
    ContactIn(**at_limit)  # the API takes it; parse_row may refuse it for what it says, never for its length
    try:
        parse_row(at_limit, "IR")
    except ValueError as err:
        assert "over the limit" not in str(err)


def test_the_csv_import_limits_tags_and_extra_columns_as_the_api_does():
    from engine.contacts import parse_row

    with pytest.raises(ValueError, match=r"^tags: a tag of 101 characters, over the limit of 100; shorten it$"):
        parse_row({"phone": "09121234567", "tags": "ok;" + "t" * 101}, "IR")
    with pytest.raises(ValueError, match=r"^tags: 51 tags, over the limit of 50"):
        parse_row({"phone": "09121234567", "tags": ";".join(f"t{i}" for i in range(51))}, "IR")
    with pytest.raises(ValueError, match=r"^attrs: 51 extra columns, over the limit of 50"):
        parse_row({"phone": "09121234567", **{f"c{i}": "v" for i in range(51)}}, "IR")
    with pytest.raises(ValueError, match=r"^attrs: a column name of 101 characters"):
        parse_row({"phone": "09121234567", "c" * 101: "v"}, "IR")


@pytest.mark.parametrize("value, problem", [
    (None, None), (2, None), (255, None),
    (0, "0 must be a whole number from 1 to 255 (the default is 4)"),
    ("many", "'many' must be a whole number from 1 to 255"), (True, "True must be"), (256, "256 must be"),
])
def test_max_sms_segments_is_read_and_checked_with_its_line(tmp_path, value, problem):
    import yaml

    from engine.errors import ConfigError
    from engine.sequences import load_sequences

    touches = [{"name": f"t{i}", "after": "1h", "channel": "sms", "template": "x.j2"} for i in range(3)]
    doc = {"name": "s", "touches": touches, **({} if value is None else {"max_sms_segments": value})}
    (tmp_path / "sequences").mkdir()
    (tmp_path / "sequences" / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    if problem is None:
        assert load_sequences(tmp_path)["s"].max_sms_segments == (value or 4)
        return
    with pytest.raises(ConfigError) as err:
        load_sequences(tmp_path)
    (only,) = err.value.problems
    assert (only.key, only.line) == ("max_sms_segments", 3 + 4 * len(touches)) and problem in only.message
