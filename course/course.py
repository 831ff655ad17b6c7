"""The course's commands: run the chapters, render them to HTML, hand out the exercises.

    .venv/bin/python course/course.py run                 # execute every chapter; fail on any error
    .venv/bin/python course/course.py html [--out DIR]    # execute and render to DIR/index.html
    .venv/bin/python course/course.py strip [--out DIR]   # exercise notebooks, solutions removed

Each chapter is a jupytext "percent" notebook (``NN_name.py``): the text file is the source of
truth, so diffs stay readable and no output is ever committed. A chapter runs in a fresh
kernel of the Python running this script (ipykernel's own kernel spec for ``sys.executable``),
so the course always runs against the environment it was started from.

An exercise is the code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` in a cell;
``strip`` replaces it with ``raise NotImplementedError("your turn")`` at the same indentation.
Any of the commands takes chapter numbers or names to work on fewer chapters (``run 3 ch6``).
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import time
from pathlib import Path

COURSE = Path(__file__).resolve().parent
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
YOUR_TURN = 'raise NotImplementedError("your turn")'
CELL_TIMEOUT_S = 300


class CourseError(Exception):
    """A chapter that cannot be run, rendered or stripped (the message says which and why)."""


# -- the chapters ---------------------------------------------------------------------------------


def chapters(selection=()) -> list[Path]:
    """The chapter files in order; ``selection`` narrows them by number ("3") or name part."""
    every = sorted(COURSE.glob("[0-9][0-9]_*.py"))
    if not selection:
        return every
    chosen = []
    for wanted in selection:
        wanted = str(wanted)
        found = [p for p in every if p.stem.split("_")[0].lstrip("0") == wanted.lstrip("0") or wanted in p.stem]
        if not found:
            raise CourseError(f"no chapter matches {wanted!r}; the chapters are: {', '.join(p.stem for p in every)}")
        chosen += [p for p in found if p not in chosen]
    return chosen


def read(path: Path):
    """A chapter as an nbformat notebook (no outputs)."""
    import jupytext

    return jupytext.read(path)


def slowest_cell(notebook) -> tuple[float, int]:
    """(seconds, cell number from 1) of the cell that took longest, from nbclient's timings."""
    from datetime import datetime

    slowest = (0.0, 0)
    for number, cell in enumerate(notebook.cells, 1):
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            seconds = (
                datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
                - datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            ).total_seconds()
            slowest = max(slowest, (seconds, number))
    return slowest


def title_of(notebook, fallback: str) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


# -- running --------------------------------------------------------------------------------------


def kernel_manager():
    """A kernel manager for this very Python: ipykernel's built-in spec for ``sys.executable``.

    Looking the name "python3" up in the usual kernel folders could find a kernel installed for
    some other Python; with no folders to search, jupyter_client falls back on ipykernel's own
    spec, which starts ``sys.executable -m ipykernel_launcher``.
    """
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))


def execute(path: Path):
    """Run a chapter top to bottom in a fresh kernel, in the course folder; return the notebook
    with its outputs. A cell that raises (an assertion included) raises CourseError."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = read(path)
    manager = kernel_manager()
    client = NotebookClient(notebook, km=manager, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(COURSE)}})
    try:
        try:
            client.execute()
        finally:  # a client given its kernel manager leaves the kernel running: stop it here
            if manager.has_kernel:
                manager.shutdown_kernel(now=True)
    except CellExecutionError as error:
        raise CourseError(f"{path.name}: a cell failed\n" + re.sub(r"\x1b\[[0-9;]*m", "", str(error))) from None
    except Exception as error:  # the kernel did not start or died: say which chapter
        raise CourseError(f"{path.name}: could not be run: {type(error).__name__}: {error}") from None
    return notebook


def execute_all(paths: list[Path], jobs: int = 1, report=print) -> tuple[dict, dict]:
    """Run chapters, ``jobs`` kernels at a time; return ({path: notebook}, {path: error text})
    in chapter order. ``report`` hears one line per chapter as it finishes."""
    from concurrent.futures import ProcessPoolExecutor

    def finished(path, started, notebook=None, error=None):
        if error is not None:
            report(f"FAILED {path.name}")
            return
        seconds, cell = slowest_cell(notebook)
        report(f"ok     {path.name}  ({time.perf_counter() - started:.1f} s; slowest: cell {cell}, {seconds:.1f} s)")

    executed, failures = {}, {}
    if jobs <= 1:
        for path in paths:
            started = time.perf_counter()
            try:
                executed[path] = execute(path)
            except CourseError as error:
                failures[path] = str(error)
            finished(path, started, executed.get(path), failures.get(path))
    else:
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {path: pool.submit(execute, path) for path in paths}
            for path, future in futures.items():
                try:
                    executed[path] = future.result()
                except CourseError as error:
                    failures[path] = str(error)
                finished(path, started, executed.get(path), failures.get(path))
    return executed, failures


# -- HTML -----------------------------------------------------------------------------------------


def static_widgets(notebook) -> None:
    """Replace each widget output (a tqdm progress bar) by the text it showed last.

    A widget needs JavaScript from the internet to draw itself in a saved page; the HTML build
    is meant to be read offline, so it shows the bar's final line as plain text instead.
    """
    state = notebook.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})

    def text(model_id: str) -> str:
        model = state.get(model_id.replace("IPY_MODEL_", ""), {})
        values = model.get("state", {})
        name = model.get("model_name", "")
        if name == "HBoxModel":
            return "".join(text(child) for child in values.get("children", []))
        if name == "HTMLModel":
            return html.unescape(re.sub(r"<[^>]+>", "", values.get("value", "")))
        if name == "FloatProgressModel":
            done = values.get("value", 0) / (values.get("max", 1) or 1)
            return "█" * round(20 * done) + "·" * (20 - round(20 * done))
        return ""

    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            widget = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if widget is not None:
                output["data"] = {"text/plain": text(widget["model_id"]) or "(a progress bar)"}
    notebook.metadata.pop("widgets", None)


def export_html(executed: dict[Path, object], out: Path) -> list[Path]:
    """Write one page per executed chapter and an index page linking them; return the pages."""
    from nbconvert import HTMLExporter

    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    pages, entries = [], []
    for path, notebook in executed.items():
        static_widgets(notebook)
        body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title_of(notebook, path.stem)}})
        page = out / f"{path.stem}.html"
        page.write_text(body.replace("</head>", PAGE_STYLE + "</head>", 1), encoding="utf-8")
        pages.append(page)
        entries.append(f'<li><a href="{page.name}">{html.escape(title_of(notebook, path.stem))}</a></li>')
    index = out / "index.html"
    index.write_text(INDEX.format(entries="\n".join(entries)), encoding="utf-8")
    return [index, *pages]


# Wide graphs shrink to the page instead of being cut off at its right edge.
PAGE_STYLE = """<style>
.jp-RenderedImage img, .jp-RenderedSVG img, .jp-OutputArea-output img { max-width: 100%; height: auto; }
</style>
"""

INDEX = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>MiniGrad: the course</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; line-height: 1.5; color: #222; }}
li {{ margin: 0.4rem 0; }}
a {{ color: #1f5fa8; }}
</style></head>
<body>
<h1>MiniGrad: the course</h1>
<p>How neural networks learn, from a derivative to a trained network, with every gradient in view.
Each chapter was run top to bottom to make these pages; open the chapter files in Jupyter to run
them yourself.</p>
<ul style="list-style: none; padding-left: 0">
{entries}
</ul>
</body>
</html>
"""


# -- exercises ------------------------------------------------------------------------------------


def strip_solutions(source: str, where: str = "a cell") -> tuple[str, int]:
    """``source`` with every solution block replaced by ``raise NotImplementedError``, and how many."""
    lines, kept, count, inside = source.split("\n"), [], 0, None
    for number, line in enumerate(lines, 1):
        marker = line.strip()
        if marker == BEGIN:
            if inside is not None:
                raise CourseError(f"{where}, line {number}: {BEGIN!r} inside a solution begun on line {inside}")
            inside = number
            kept.append(line[: len(line) - len(line.lstrip())] + YOUR_TURN)
            count += 1
        elif marker == END:
            if inside is None:
                raise CourseError(f"{where}, line {number}: {END!r} without a {BEGIN!r} before it")
            inside = None
        elif inside is None:
            kept.append(line)
    if inside is not None:
        raise CourseError(f"{where}, line {inside}: {BEGIN!r} is never closed by {END!r}")
    return "\n".join(kept), count


def strip(paths: list[Path], out: Path) -> dict[Path, int]:
    """Write each chapter as an exercise notebook (``.ipynb``, no outputs) into ``out``;
    return how many solutions each lost."""
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    removed = {}
    for path in paths:
        notebook = read(path)
        total = 0
        for k, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                cell.source, count = strip_solutions(cell.source, f"{path.name}, cell {k + 1}")
                total += count
        nbformat.validate(notebook)
        target = out / f"{path.stem}.ipynb"
        nbformat.write(notebook, target)
        removed[target] = total
    return removed


# -- the command line -----------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="course.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_p = commands.add_parser("run", help="execute every chapter in a fresh kernel; fail on any error")
    html_p = commands.add_parser("html", help="execute every chapter and render it, with an index page")
    html_p.add_argument(
        "--out", type=Path, default=COURSE / "build" / "html", help="folder (default: course/build/html)"
    )
    strip_p = commands.add_parser("strip", help="write the exercise notebooks, solutions removed")
    strip_p.add_argument(
        "--out", type=Path, default=COURSE / "build" / "exercises", help="folder (default: course/build/exercises)"
    )
    for sub in (run_p, html_p, strip_p):
        sub.add_argument("chapters", nargs="*", help="chapter numbers or names (default: all)")
    for sub in (run_p, html_p):
        sub.add_argument("--jobs", type=int, default=2, help="chapters run at once, one kernel each (default: 2)")
    args = parser.parse_args(argv)
    try:
        paths = chapters(args.chapters)
        if args.command == "strip":
            for target, count in strip(paths, args.out).items():
                print(f"{target}: {count} solution(s) removed")
            return 0
        executed, failures = execute_all(paths, args.jobs, report=lambda line: print(line, flush=True))
        if failures:
            print("\n\n".join(failures.values()), file=sys.stderr)
            print(
                f"{len(failures)} of {len(paths)} chapter(s) failed: {', '.join(p.name for p in failures)}",
                file=sys.stderr,
            )
            return 1
        if args.command == "html":
            pages = export_html(executed, args.out)
            print(f"wrote {len(pages)} pages; open {pages[0]}")
        return 0
    except CourseError as error:
        print(f"course.py: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
