"""engine.yamlfile: a YAML syntax error points at the mistake and says what to check."""
from __future__ import annotations

import pytest


# each text marks the line of the mistake with "# <-"
@pytest.mark.parametrize("text, says", [
    ("name: s\ntouches:\n  - name: a\n    after: 1d\n   channel: sms  # <-\n", "line this key up with the keys beside it"),
    ("name: s\nlocale: fa\n  oops: 1  # <-\nb: 2\n", "a ':' where no key can start"),
    ("name: s\ndescription: a: b  # <-\nb: 2\n", "put a value that contains ': ' in quotes"),
    ("name: s\nexit_on converted  # <-\nb: 2\nc: 3\n", "a key without its ':'"),
    ("name: s\nexit_on:converted  # <-\nb: 2\n", "without a space after the ':'"),
    ("name: s\noffer:\n\tcode: X  # <-\nb: 2\n", "a tab character; YAML indents with spaces only"),
    ('name: s\ndescription: "winter sale  # <-\nb: 2\nc: 3\nd: 4\n', 'a quote opened on line 2 is never closed'),
    ("name: s\ndescription: 'winter sale  # <-\nb: 2\nc: 3\n", "a quote opened on line 2 is never closed"),
    ("name: s\nexit_on: [converted, replied  # <-\nb: 2\nc: 3\n", "a [ opened on line 2 is not closed with ]"),
    ("name: s\noffer: {code: X, title: Y  # <-\nb: 2\n", "a { opened on line 2 is not closed with }"),
    ("name: s\ntouches:\n  - name: a\n    after: 1d\n  channel: sms  # <-\n", "a key at the indentation of the list's"),
    ("name: s\ndescription: 'it's new'  # <-\n", "text after a quoted value"),
    ("name: s\ndescription: `x`  # <-\n", "a value cannot start with `; put the value in quotes"),
])
def test_a_yaml_syntax_error_points_at_the_mistake_and_says_what_to_check(tmp_path, text, says):
    from engine.errors import ConfigError
    from engine.yamlfile import load_yaml

    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    mistake = next(i for i, line in enumerate(text.splitlines(), 1) if line.endswith("# <-"))
    with pytest.raises(ConfigError) as raised:
        load_yaml(path)
    [problem] = raised.value.problems
    assert problem.line == mistake and problem.message.startswith("YAML syntax error: ") and says in problem.message, problem
