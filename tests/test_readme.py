"""The README's example works exactly as printed."""

import contextlib
import io
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_five_line_example_prints_what_the_readme_says():
    text = README.read_text()
    match = re.search(r"<!-- readme-example -->\n```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", text, re.S)
    assert match, "the README's example block is missing"
    code, expected = match.groups()
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, "README.md", "exec"), {})
    assert output.getvalue() == expected


def test_readme_names_the_two_setup_commands_that_ci_runs():
    text = README.read_text()
    assert "bash scripts/dev demo" in text and "bash scripts/dev test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bash scripts/dev test" in ci
