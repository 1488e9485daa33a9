"""engine.contacts, engine.columns, engine.csvcheck: contact import (Persian text, spreadsheet headers and files,
counts)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa


def test_names_get_persian_letters_without_zero_width_junk_and_digits_in_phones_read():
    from engine.contacts import parse_row

    row = parse_row({"phone": "٠٩١٢ ١٢٣ ٤٥٦٧", "first_name": "\u200fعلي\u200b", "last_name": "كريمي\u200cها\ufeff"}, "IR")
    assert (row.phone, row.first_name, row.last_name) == ("+989121234567", "علی", "کریمی\u200cها")  # ZWNJ kept
    assert parse_row({"phone": "۰۹۱۲۱۲۳۴۵۶۷", "first_name": "يكتا"}, "IR").first_name == "یکتا"


@pytest.mark.parametrize("header, read", [
    (["\ufeffPhone ", "Email"], ["phone", "email"]),
    (["MOBILE", "First Name", "last-name", "E-mail"], ["phone", "first_name", "last_name", "email"]),
    (["موبایل", "نام", "نام خانوادگی", "ایمیل"], ["phone", "first_name", "last_name", "email"]),
    (["تلفن همراه", "نام\u200cخانوادگی", "شهر"], ["phone", "last_name", "شهر"]),
    (["شماره", " City "], ["phone", "City"]),
    (["ايميل", "Tags"], ["email", "tags"]),  # an Arabic ي typed in the header
])
def test_a_spreadsheet_header_is_read_as_the_import_columns(header, read):
    from engine.columns import canonical_header

    assert canonical_header(header, "leads.csv") == read


def test_two_columns_read_as_one_are_refused_naming_both():
    from engine.columns import canonical_header
    from engine.errors import InputError

    with pytest.raises(InputError, match=r"^leads.csv:1: the columns Phone, موبایل are all read as phone; keep one"):
        canonical_header(["Phone", "موبایل", "name"], "leads.csv")


@pytest.mark.parametrize("content, says", [
    (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, "is an Excel workbook (.xlsx)"),
    ("phone,first_name\n09121234567,سارا\n".encode("utf-16"), "is UTF-16 text"),
    ("phone,first_name\n09121234567,سارا\n".encode("utf-16-le"), "is UTF-16 text"),  # no BOM
    ("phone;first_name\n09121234567;سارا\n".encode(), "leads.csv:1: the header is separated by semicolons (;)"),
    ("\ufeffphone\tname\n09121234567\tسارا\n".encode(), "leads.csv:1: the header is separated by tabs"),
])
def test_a_file_saved_wrong_gets_one_line_naming_it_and_the_fix(tmp_path, content, says):
    from engine.csvcheck import check_readable
    from engine.errors import InputError

    path = tmp_path / "leads.csv"
    path.write_bytes(content)
    with pytest.raises(InputError) as refused:
        check_readable(path)
    message = str(refused.value)
    assert says in message and message.endswith("save it from the spreadsheet as CSV UTF-8 (comma delimited)")
    assert "\n" not in message


def test_a_duplicate_in_a_later_batch_is_counted_once_and_a_second_import_changes_nothing(make_world, monkeypatch,
                                                                                          tmp_path):
    import engine.contacts
    from engine.contacts import import_csv, import_summary

    from tests.conftest import winter_sequence

    world = make_world([winter_sequence()])
    world.add_contacts({"phone": "09125555555", "first_name": "Old"})
    monkeypatch.setattr(engine.contacts, "BATCH", 2)
    path = tmp_path / "leads.csv"
    path.write_text("phone,first_name,city\n09121111111,Sara,Tehran\n09125555555,,\n09122222222,Ali,\n"
                    "۰۹۱۲۱۱۱۱۱۱۱,Sarah,Shiraz\nbad,X,\n09125555555,Old,Karaj\n", encoding="utf-8")
    first = import_csv(world.engine, path, "IR")
    assert import_summary(first) == ("6 rows: 2 created, 1 updated, 0 unchanged, 2 duplicates of an earlier row "
                                     "(lines 5, 7), 1 bad; 1 with a warning")
    assert first.warnings == [(5, "a duplicate of an earlier row for the same contact: its first_name, city "
                                  "differ, and the earlier row's value is kept")]
    again = import_csv(world.engine, path, "IR")
    assert import_summary(again) == ("6 rows: 0 created, 0 updated, 3 unchanged, 2 duplicates of an earlier row "
                                     "(lines 5, 7), 1 bad; 1 with a warning")
    assert again.contact_ids == first.contact_ids and len(first.contact_ids) == 3


def test_importing_a_file_twice_reports_no_update_when_two_rows_name_one_contact(make_world, tmp_path):
    from engine.contacts import import_csv
    from tests.conftest import winter_sequence

    world = make_world([winter_sequence()])
    path = tmp_path / "leads.csv"
    path.write_text("phone,email,first_name,tags\n09121111111,,Sara,winter\n09122222222,,Ali,\n"
                    "+989121111111,sara@example.com,Sarah,vip\n", encoding="utf-8")
    assert import_csv(world.engine, path, "IR").created == 2
    again = import_csv(world.engine, path, "IR")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)  # the third row is the first one's again
    assert again.duplicates == [4]
    with world.engine.connect() as conn:
        stored = conn.execute(sa.text("select first_name, email, tags from contacts where phone = '+989121111111'"))
        assert stored.one() == ("Sara", "sara@example.com", ";vip;winter;")  # the first row's name; the rest merged


def test_a_good_mobile_beside_a_bad_email_is_imported_with_a_warning_on_its_line(make_world, tmp_path):
    from engine.contacts import import_csv
    from tests.conftest import winter_sequence

    world = make_world([winter_sequence()])
    path = tmp_path / "leads.csv"
    path.write_text("phone,email\n09121111111,ali@\nnot-a-phone,bad@\n", encoding="utf-8")
    report = import_csv(world.engine, path, "IR")
    assert report.created == 1 and [line for line, _ in report.errors] == [3]  # both bad: nothing to keep
    [(line, warning)] = report.warnings
    assert line == 2 and warning.startswith("email: 'ali@' is not a valid email address")
    assert warning.endswith("imported without this email, fix it and import again to add it")
