"""``followup export contacts|messages --csv FILE``: formula-like cells quoted, the file written whole or not at all."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from engine import export as export_module
from engine.errors import InputError
from engine.export import export_csv, safe_cell
from tests.conftest import simple_sequence
from tests.test_cli import Project, first_upgrade, migrated_db, populated, populated_db, starter  # noqa: F401


@pytest.mark.parametrize("value, cell", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("+989121234567", "+989121234567"),  # a number only: nothing to run
    ("-3", "-3"),
    ("سارا", "سارا"),
    ("a=b", "a=b"),
    (None, ""),
    (12, 12),
])
def test_cells_that_a_spreadsheet_would_run_are_quoted(value, cell):
    assert safe_cell(value) == cell


def read(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def test_export_contacts_quotes_a_formula_in_a_name_and_keeps_attrs(make_world, tmp_path):
    world = make_world([simple_sequence("plain")])
    world.add_contacts({"phone": "09121234567", "first_name": "=HYPERLINK(\"http://evil\",\"x\")", "last_name": "رضایی",
                        "tags": "winter;vip", "city": "@تهران"},
                       {"email": "john@example.com", "first_name": "John"})
    target = tmp_path / "contacts.csv"
    with world.engine.connect() as conn:
        assert export_csv(conn, "contacts", target) == 2
    first, second = read(target)
    assert first["first_name"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert (first["phone"], first["last_name"], first["tags"], first["city"]) == ("+989121234567", "رضایی", "vip;winter",
                                                                                  "'@تهران")
    assert (second["email"], second["phone"], second["city"]) == ("john@example.com", "", "")
    assert target.read_bytes().startswith(b"\xef\xbb\xbf")  # a byte-order mark: spreadsheets read the Persian right
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []  # the temporary file became it


def test_export_messages_has_one_row_per_message(make_world, tmp_path):
    world = make_world([simple_sequence("plain")])
    [cid] = world.add_contacts({"phone": "09121234567", "first_name": "Sara"})
    world.enroll("plain", cid)
    target = tmp_path / "messages.csv"
    with world.engine.connect() as conn:
        assert export_csv(conn, "messages", target) == 3
    assert [(r["touch"], r["status"]) for r in read(target)] == [("t0", "scheduled"), ("t1", "pending"), ("t2", "pending")]


def test_a_failure_midway_leaves_the_existing_file_untouched_and_no_part_file(make_world, tmp_path, monkeypatch):
    world = make_world([simple_sequence("plain")])
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "contacts.csv"
    target.write_text("the previous export\n", encoding="utf-8")

    def broken(conn):
        def rows():
            yield [1, "first row"]
            raise OSError("disk full")
        return ["id", "name"], rows()

    monkeypatch.setitem(export_module.EXPORTS, "contacts", broken)
    with world.engine.connect() as conn, pytest.raises(OSError, match="disk full"):
        export_csv(conn, "contacts", target)
    assert target.read_text(encoding="utf-8") == "the previous export\n"
    assert sorted(p.name for p in folder.iterdir()) == ["contacts.csv"]


def test_a_missing_folder_is_refused_before_anything_is_read(make_world, tmp_path):
    world = make_world([simple_sequence("plain")])
    with world.engine.connect() as conn, pytest.raises(InputError, match="the folder .*nowhere does not exist"):
        export_csv(conn, "contacts", tmp_path / "nowhere" / "contacts.csv")


def test_the_cli_writes_the_file_and_says_how_many_rows(populated: Project):
    result = populated.run("export", "contacts", "--csv", "out/contacts.csv")
    assert result.rc == 2 and "the folder out does not exist" in result.err, result
    result = populated.run("export", "contacts", "--csv", "contacts.csv")
    assert result.rc == 0, result
    assert result.out.strip() == "contacts.csv: 3 contacts written"
    assert [r["email"] for r in read(populated.path("contacts.csv"))] == ["ali@example.com", "", "john@example.com"]
    assert populated.run("export", "people", "--csv", "x.csv").rc == 2
