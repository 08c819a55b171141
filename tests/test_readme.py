"""The README says what the code does: its error table is tests/error_cases.py, its example runs,
and its two commands are the ones CI runs (.ci/run reads them from the README)."""

import re
from pathlib import Path

import error_cases

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_error_table_is_the_tested_table():
    table = README.split("<!-- errors:begin -->\n")[1].split("<!-- errors:end -->")[0]
    assert table.strip() == error_cases.markdown_table(), (
        "regenerate the README's error table: python tests/error_cases.py"
    )


def test_example_runs():
    example = re.search(r"## Use\n.*?```python\n(.*?)```", README, re.S).group(1)
    exec(compile(example, "README.md example", "exec"), {})


def test_ci_commands_are_marked():
    for tag in ("setup", "test"):
        assert re.search(rf"<!-- ci:{tag} -->\n```bash\n[^\n]+\n```", README), tag
