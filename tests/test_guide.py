"""docs/writing-plugins.md is run, exactly as printed.

Its example plugin's files are extracted, installed with pip and used through their entry
point; its commands and code blocks run and print what the guide says they print; its hook
reference matches minigrad_core/hookspecs.py, and its OpSpec table the OpSpec fields.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from minigrad_core import OpSpec, Registry, get_registry, hookspecs, make_plugin_manager, using
from minigrad_core.cli import main as cli_main
from minigrad_testing import GradientCheckError

GUIDE_PATH = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"
GUIDE = GUIDE_PATH.read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```$", GUIDE, flags=re.MULTILINE | re.DOTALL)  # (language, text)
FILE_HEADER = re.compile(r"# ([\w/]+\.(?:py|toml))\n")


def files() -> dict[str, str]:
    """The blocks that are files: their first line is ``# path``."""
    return {match.group(1): text for _, text in BLOCKS if (match := FILE_HEADER.match(text))}


def block_after(marker: str, language: str = "") -> str:
    """The first code block (of ``language``, if given) after the text ``marker``."""
    position = GUIDE.index(marker)
    for match in re.finditer(r"^```(\w*)\n(.*?)^```$", GUIDE[position:], flags=re.MULTILINE | re.DOTALL):
        if not language or match.group(1) == language:
            return match.group(2)
    raise AssertionError(f"no ```{language} block after {marker!r} in {GUIDE_PATH.name}")


def squeeze(text: str) -> str:
    return " ".join(text.split())


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MINIGRAD_PLUGINS")}
    return {**env, **extra}


# -- the hook reference cannot drift from the hookspecs --------------------------------------------

HOOKSPECS = {
    name: function for name, function in vars(hookspecs).items() if name.startswith("minigrad_") and callable(function)
}


def test_the_hook_reference_lists_every_hookspec_with_its_arguments_and_no_other():
    documented = dict(re.findall(r"^### `(minigrad_\w+)\((.*?)\)`$", GUIDE, flags=re.MULTILINE))
    specified = {name: ", ".join(inspect.signature(f).parameters) for name, f in HOOKSPECS.items()}
    assert documented == specified


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_each_hook_s_entry_says_what_its_hookspec_says(name):
    section = GUIDE.split(f"### `{name}(")[1].split("\n## ")[0].split("\n### ")[0]
    first_sentence = inspect.getdoc(HOOKSPECS[name]).split("\n\n")[0].replace("``", "`")
    assert squeeze(first_sentence) in squeeze(section)


def test_the_opspec_table_lists_every_field():
    documented = set(re.findall(r"`(\w+)(?:\(.*?\))?`", GUIDE.split("## `OpSpec` fields")[1]))
    fields = {f.name for f in dataclasses.fields(OpSpec)} - {"plugin"}  # set by the registry, not the author
    assert fields <= documented, fields - documented


# -- the example plugin, installed with pip -----------------------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The guide's plugin folder, written from the guide and installed with pip into a folder
    that is put on PYTHONPATH: MiniGrad finds it by the entry point pip installed."""
    base = tmp_path_factory.mktemp("guide")
    folder = base / "minigrad-swish"
    for path, text in files().items():
        if path.startswith("minigrad_hello"):
            continue  # the command example is not part of the plugin
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    assert {"pyproject.toml", "minigrad_swish.py", "tests/test_swish.py"} <= set(files())
    site = base / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(folder),
        ],
        check=True,
        capture_output=True,
        env=clean_env(),
        timeout=300,
    )
    return {"folder": folder, "env": clean_env(PYTHONPATH=str(site), MINIGRAD_PLUGINS="ops,swish")}


def run(command, installed, **kwargs):
    return subprocess.run(
        command, cwd=installed["folder"], env=installed["env"], capture_output=True, text=True, timeout=300, **kwargs
    )


def test_minigrad_ops_lists_the_op_as_the_guide_shows(installed):
    assert "$ pip install -e .\n$ minigrad ops\n" in GUIDE
    listing = run([str(Path(sys.executable).with_name("minigrad")), "ops"], installed)
    assert listing.returncode == 0, listing.stderr
    expected = squeeze(block_after("lists, among the built-in ops"))
    assert expected in [squeeze(line) for line in listing.stdout.splitlines()]


def test_the_usage_example_prints_what_the_guide_says(installed):
    code = block_after("and in Python:", "python")
    printed = run([sys.executable, "-c", code], installed)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == block_after("prints")


def test_the_ci_line_runs_the_plugin_s_tests_and_its_op_checks(installed):
    line = block_after("### One line in CI", "console").strip()
    assert line.startswith("$ pytest ")
    result = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", *line.split()[2:]], installed)
    assert result.returncode == 0, result.stdout + result.stderr
    for test in (
        "tests/test_swish.py::test_swish_derivatives_to_second_order PASSED",
        "tests/test_swish.py::test_swish_inside_a_bigger_function PASSED",
        "minigrad::check_op[swish] PASSED",
        "minigrad::check_op[swish-order2] PASSED",
    ):
        assert test in result.stdout
    assert "5 passed" in result.stdout


def test_the_failure_example_prints_the_report_shown(installed):
    code = block_after("forgotten the inner `beta`", "python")
    failed = run([sys.executable, "-c", code], installed)
    assert failed.returncode == 1
    report = block_after("then `check_op` raises")
    assert failed.stderr.endswith(f"minigrad_testing.{report}") or report in failed.stderr, failed.stderr


# -- the notebook cells and the command example ---------------------------------------------------------


def test_the_notebook_cells_run_as_printed():
    first_cell = block_after("## Trying an op in a notebook", "python")
    second_cell = block_after("Run the cell again with the domain declared", "python")
    shown_error = block_after("but nothing told the").strip()
    with using(Registry(make_plugin_manager(selection={"ops"}))):
        namespace: dict = {}
        with pytest.raises(GradientCheckError) as info:
            exec(first_cell, namespace)
        assert namespace["y"].data == pytest.approx(0.4054651081081644) and namespace["y"]._prev[0].grad == 1 / 1.5
        assert f"{type(info.value).__name__}: {info.value}".splitlines()[0] == shown_error
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(second_cell, namespace)
        assert re.fullmatch(r"log1p: \d+ inputs checked against finite differences\n", output.getvalue())
        assert "log1p" not in get_registry().ops  # the cell removed it again


def test_the_command_example_adds_a_subcommand(capsys):
    module = types.ModuleType("minigrad_hello")
    exec(files()["minigrad_hello.py"], module.__dict__)
    with using(Registry.from_plugins(module)):
        assert cli_main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello, world\n"
    assert "makes `minigrad hello world` print `hello, world`" in GUIDE


def test_the_kinks_example_is_a_valid_op_that_passes_its_checks():
    import minigrad_ops
    from minigrad_core import Domain, Registry, register_op
    from minigrad_testing import check_op

    namespace = {"OpSpec": OpSpec, "Domain": Domain}
    exec(block_after("relu6, `min(max(x, 0), 6)`", "python"), namespace)
    spec = namespace["RELU6"]
    assert spec.domain.kinks_of(0) == (0.0, 6.0)
    with using(Registry.from_plugins(minigrad_ops)):
        register_op(spec)
        result = check_op("relu6", max_examples=20)
        assert result.examples > 0
