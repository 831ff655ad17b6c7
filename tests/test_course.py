"""The course (course/NN_*.py): every chapter runs top to bottom in a fresh kernel, the HTML build
renders it, and ``strip`` hands out exercises with every solution removed.

Each chapter checks its own numbers with asserts (against PyTorch float64 where it compares), so
a chapter that runs is a chapter whose numbers are right.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jupytext")
pytest.importorskip("nbclient")
pytest.importorskip("nbconvert")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "course" / "course.py"


def _load_commands():
    spec = importlib.util.spec_from_file_location("course_commands", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # worker processes find execute() by this name
    spec.loader.exec_module(module)
    return module


course = _load_commands()
CHAPTERS = course.chapters()


def test_the_course_has_the_nine_chapters_of_the_issue():
    assert [p.stem for p in CHAPTERS] == [
        "01_derivative",
        "02_graph",
        "03_backprop_by_hand",
        "04_neuron",
        "05_accumulation",
        "06_training",
        "07_your_own_op",
        "08_milestones",
        "09_beyond",
    ]


@pytest.fixture(scope="module")
def executed():
    """Every chapter run once, two kernels at a time: ({path: notebook}, {path: error})."""
    return course.execute_all(CHAPTERS, jobs=2, report=lambda line: None)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_top_to_bottom_in_a_fresh_kernel(executed, chapter):
    notebooks, failures = executed
    assert chapter not in failures, failures.get(chapter)
    code = [c for c in notebooks[chapter].cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code)  # every cell ran


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_checks_its_own_numbers_and_commits_no_outputs(chapter):
    text = chapter.read_text(encoding="utf-8")
    assert re.search(r"^\s*assert ", text, re.M), f"{chapter.name} checks none of its numbers"
    notebook = course.read(chapter)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_kernel_is_this_python(tmp_path):
    """The notebooks run on the Python that runs the course (the venv), whatever else is installed."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    manager = course.kernel_manager()
    try:
        NotebookClient(notebook, km=manager, timeout=60).execute()
    finally:
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    printed = notebook.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()


def test_html_build_has_an_index_and_a_page_per_chapter(executed, tmp_path):
    notebooks, failures = executed
    if failures:
        pytest.skip("a chapter failed to run (reported by its own test)")
    pages = course.export_html(notebooks, tmp_path)
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert pages[0].name == "index.html" and len(pages) == 1 + len(CHAPTERS)
    for chapter in CHAPTERS:
        page = tmp_path / f"{chapter.stem}.html"
        assert f'href="{page.name}"' in index
        body = page.read_text(encoding="utf-8")
        assert "Traceback" not in body
        assert "application/vnd.jupyter.widget-view+json" not in body  # progress bars made static
    graph_pages = ["02_graph", "03_backprop_by_hand", "04_neuron", "05_accumulation", "07_your_own_op"]
    for stem in graph_pages:  # graphs drawn inline, as SVG (nbconvert embeds it as a data: image)
        assert "data:image/svg+xml;base64," in (tmp_path / f"{stem}.html").read_text(encoding="utf-8"), stem
    for stem in ["01_derivative", "06_training", "08_milestones", "09_beyond"]:  # matplotlib figures
        assert "data:image/png;base64," in (tmp_path / f"{stem}.html").read_text(encoding="utf-8"), stem
    assert "iframe" in (tmp_path / "04_neuron.html").read_text(encoding="utf-8")  # the explorer embedded
    assert "100%" in (tmp_path / "06_training.html").read_text(encoding="utf-8")  # the bar's last line


def test_html_command_writes_pages(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "html", "2", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "index.html").exists() and (tmp_path / "02_graph.html").exists()
    assert "Chapter 2: The graph" in (tmp_path / "index.html").read_text(encoding="utf-8")


def _solutions(source: str) -> list[str]:
    """The lines between the markers, stripped of indentation."""
    return [
        m.strip()
        for block in re.findall(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", source, re.S)
        for m in block.splitlines()
        if m.strip()
    ]


def test_strip_removes_every_solution_and_leaves_notebooks_that_parse(tmp_path):
    import nbformat

    result = subprocess.run(
        [sys.executable, str(SCRIPT), "strip", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    total = 0
    for chapter in CHAPTERS:
        source = chapter.read_text(encoding="utf-8")
        markers = source.count("# BEGIN SOLUTION")
        assert markers == source.count("# END SOLUTION")
        stripped = nbformat.read(tmp_path / f"{chapter.stem}.ipynb", as_version=4)
        nbformat.validate(stripped)
        code = "\n".join(c.source for c in stripped.cells if c.cell_type == "code")
        assert "BEGIN SOLUTION" not in code and "END SOLUTION" not in code
        assert code.count(course.YOUR_TURN) == markers
        for cell in stripped.cells:
            if cell.cell_type == "code":
                ast.parse(cell.source)  # still Python
                assert not cell.get("outputs")
        original = {
            line.strip() for c in course.read(chapter).cells if c.cell_type == "code" for line in c.source.splitlines()
        }
        left = {line.strip() for line in code.splitlines()}
        for line in _solutions(source):
            # a solution line may survive only where the same line also appears outside solutions
            outside = "\n".join(re.split(r"# BEGIN SOLUTION\n.*?# END SOLUTION", source, flags=re.S))
            assert line not in left or line in outside, f"{chapter.name}: solution line {line!r} left in"
        assert original  # the chapter had code at all
        total += markers
    assert total >= 6  # the derivative, grads by hand, tanh, a neuron, the += fix, swish


@pytest.mark.parametrize(
    "stem, says",
    [
        ("01_derivative", "Not written yet: replace the `raise NotImplementedError` in df"),
        ("05_accumulation", "Not written yet: replace the `raise NotImplementedError` in add_fixed"),
        ("07_your_own_op", "Not written yet: replace the `raise NotImplementedError` in swish_derivative"),
    ],
)
def test_a_stripped_exercise_is_caught_by_its_check_in_plain_words(tmp_path, stem, says):
    """Run a chapter with its solutions removed: the check cell says so, then stops the notebook."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    course.strip(course.chapters([stem]), tmp_path)
    notebook = nbformat.read(tmp_path / f"{stem}.ipynb", as_version=4)
    manager = course.kernel_manager()
    try:
        with pytest.raises(CellExecutionError, match=r"AssertionError"):
            NotebookClient(
                notebook, km=manager, timeout=120, resources={"metadata": {"path": str(course.COURSE)}}
            ).execute()
    finally:
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert says in printed


def test_strip_solutions_names_unbalanced_markers():
    text, count = course.strip_solutions("def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n")
    assert count == 1 and text == f"def f():\n    {course.YOUR_TURN}\n"
    with pytest.raises(course.CourseError, match=r"line 2.*never closed"):
        course.strip_solutions("x = 1\n# BEGIN SOLUTION\nx = 2\n", "ch")
    with pytest.raises(course.CourseError, match=r"line 1.*without"):
        course.strip_solutions("# END SOLUTION\n", "ch")


def test_an_unknown_chapter_is_named():
    with pytest.raises(course.CourseError, match=r"no chapter matches 'nope'.*01_derivative"):
        course.chapters(["nope"])
