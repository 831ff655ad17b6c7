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


def _python_block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no Python block under {heading!r}"
    return match.group(1)


def test_readme_training_loop_runs_and_learns():
    import minigrad_nn

    minigrad_nn.seed(0)  # the README's loop starts from random weights; fix them for the test
    namespace = {}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(_python_block_after("## Train a network"), "README.md", "exec"), namespace)
    assert namespace["loss"].data < 0.5 and len(namespace["n"].parameters()) == 41
    lines = output.getvalue().splitlines()
    assert [line.split(" | ")[0] for line in lines] == [f"Step {k}" for k in range(20)]
    losses = [float(line.split("Loss: ")[1]) for line in lines]
    assert losses[-1] < losses[0] and losses[-1] == round(namespace["loss"].data, 4)
    text = README.read_text()
    shown = re.search(r"prints the loss, one line a step.*?```\n(.*?)```", text, re.S).group(1).splitlines()
    assert shown == [*lines[:2], "...", *lines[-1:]]


def test_readme_custom_op_block_registers_a_working_op():
    from minigrad_core import Value, unregister_op
    from minigrad_testing import check_op

    namespace = {}
    exec(compile(_python_block_after("## Write your own op"), "README.md", "exec"), namespace)
    try:
        x = Value(2.0)
        y = x.cube()
        y.backward()
        assert (y.data, x.grad) == (8.0, 12.0)
        check_op("cube")
    finally:
        unregister_op("cube")
