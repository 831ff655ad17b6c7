"""MiniGrad as a user installs it: built wheels in a fresh virtual environment, not the checkout.

An editable install hides the classic packaging bugs: a data file that is on disk but not in the
wheel (the explorer's JavaScript), an entry point that only exists in the source tree, a plugin
importing a distribution it does not declare. So every distribution (the root one and each one
under ``plugins/``) is built with the standard frontend, sdist first and the wheel from the sdist,
the wheels are installed into a new virtual environment (no system site-packages, no torch), and
the commands of the README run there, from a folder outside the checkout.

Slow (about a minute; most of it pip): ``pytest -m "not slow"`` leaves it out locally, CI runs it.
The static check of declared imports at the end is fast and always runs.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIRS = [ROOT, *sorted(path.parent for path in ROOT.glob("plugins/*/pyproject.toml"))]


def read_project(folder: Path) -> dict:
    with open(folder / "pyproject.toml", "rb") as file:
        pyproject = tomllib.load(file)
    return {
        "name": pyproject["project"]["name"],
        "version": pyproject["project"]["version"],
        "packages": pyproject["tool"]["setuptools"]["packages"],
        "dependencies": pyproject["project"].get("dependencies", []),
        "extras": pyproject["project"].get("optional-dependencies", {}),
        "folder": folder,
    }


PROJECTS = [read_project(folder) for folder in PROJECT_DIRS]


def wheel_stem(project: dict) -> str:
    return f"{project['name'].replace('-', '_')}-{project['version']}"


GRAPHVIZ_WHEEL = next(f"{wheel_stem(p)}-py3-none-any.whl" for p in PROJECTS if p["name"] == "minigrad-graphviz")


def run(args: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return result


# -- building and installing (once for the module) -----------------------------------------------


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    """Every distribution built into one folder, the builds running side by side."""
    out = tmp_path_factory.mktemp("wheelhouse")
    # No build isolation: the backend (setuptools, in the test extra) comes from this environment,
    # and `build` still checks it satisfies each pyproject's build-system.requires. Isolated builds
    # fetch setuptools into twelve throwaway environments and take three times as long here;
    # `bash scripts/dev wheels` builds isolated.
    builds = [
        (
            project,
            subprocess.Popen(
                [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(project["folder"])],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
        for project in PROJECTS
    ]
    for project, process in builds:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, f"building {project['name']} failed:\n{output[-4000:]}"
    return out


@pytest.fixture(scope="module")
def user_env(tmp_path_factory) -> dict:
    """The environment variables of a user with the fresh venv activated, and nothing of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIGRAD_", "PYTHON", "VIRTUAL_ENV"))}
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.fixture(scope="module")
def fresh_venv(wheelhouse, user_env, tmp_path_factory) -> Path:
    """A new virtual environment with the wheels (and their dependencies) installed, not editable."""
    home = tmp_path_factory.mktemp("fresh")
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(home / "venv")
    python = home / "venv" / "bin" / "python"
    wheels = [wheelhouse / f"{wheel_stem(p)}-py3-none-any.whl" for p in PROJECTS]
    # The wheel files are named, so pip never looks for our names on an index; their dependencies
    # come from the configured index (pip's cache keeps that quick). `demo` brings matplotlib.
    requirements = [f"{wheels[0]}[demo]", *map(str, wheels[1:])]
    run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements], home, user_env)
    return home / "venv"


@pytest.fixture
def in_venv(fresh_venv, user_env, tmp_path):
    """Run a command as a user would, the fresh venv first on PATH, from an empty folder."""
    path = f"{fresh_venv / 'bin'}{os.pathsep}{user_env.get('PATH', '')}"
    env = dict(user_env, PATH=path, VIRTUAL_ENV=str(fresh_venv))

    def call(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return run(list(args), tmp_path, env, timeout)

    call.cwd = tmp_path
    return call


# -- what was built -----------------------------------------------------------------------------


@pytest.mark.slow
def test_each_distribution_builds_an_sdist_and_a_wheel(wheelhouse):
    built = sorted(path.name for path in wheelhouse.iterdir())
    expected = sorted(
        name for p in PROJECTS for name in (f"{wheel_stem(p)}.tar.gz", f"{wheel_stem(p)}-py3-none-any.whl")
    )
    assert built == expected


@pytest.mark.slow
def test_wheels_hold_their_packages_data_files_and_type_marker(wheelhouse):
    for project in PROJECTS:
        with zipfile.ZipFile(wheelhouse / f"{wheel_stem(project)}-py3-none-any.whl") as wheel:
            names = set(wheel.namelist())
        for package in project["packages"]:
            source = project["folder"] / package
            shipped = {f"{package}/{path.relative_to(source).as_posix()}" for path in source.rglob("*.py")}
            assert shipped <= names, f"{project['name']} wheel lacks {sorted(shipped - names)}"
            assert f"{package}/py.typed" in names, f"{project['name']} wheel lacks {package}/py.typed"
        assert not any(name.startswith("tests/") for name in names), f"{project['name']} wheel ships tests/"
    with zipfile.ZipFile(wheelhouse / GRAPHVIZ_WHEEL) as wheel:
        assert {"minigrad_graphviz/explorer.js", "minigrad_graphviz/explorer.css"} <= set(wheel.namelist())


# -- the README's commands, run from the installed wheels --------------------------------------


@pytest.mark.slow
def test_packages_are_imported_from_the_wheels_not_the_checkout(in_venv, fresh_venv):
    packages = [package for p in PROJECTS for package in p["packages"]]
    files_of = "{n: importlib.import_module(n).__file__ for n in sys.argv[1:]}"
    script = f"import importlib, json, sys\nprint(json.dumps({files_of}))"
    files = json.loads(in_venv("python", "-c", script, *packages).stdout)
    for package, file in files.items():
        assert Path(file).is_relative_to(fresh_venv), f"{package} imported from {file}"


@pytest.mark.slow
def test_version_lists_every_installed_distribution(in_venv):
    lines = in_venv("minigrad", "--version").stdout.splitlines()
    assert lines == [f"{p['name']} {p['version']}" for p in sorted(PROJECTS, key=lambda p: p["name"])]
    assert (
        in_venv("python", "-c", "import minigrad_core; print(minigrad_core.__version__)").stdout.strip()
        == (PROJECTS[0]["version"])
    )


@pytest.mark.slow
def test_ops_and_plugins_come_from_every_distribution(in_venv):
    plugins = json.loads(in_venv("minigrad", "plugins", "--json").stdout)
    assert [p for p in plugins if p["status"] != "loaded"] == []
    assert {p["name"]: p["distribution"] for p in plugins} == {
        "ops": "minigrad-edu",
        "nn": "minigrad-edu",
        "explain": "minigrad-explain",
        "replay": "minigrad-replay",
        "graphviz": "minigrad-graphviz",
        "extras": "minigrad-extras",
    }
    ops = {row["name"]: row["distribution"] for row in json.loads(in_venv("minigrad", "ops", "--json").stdout)}
    assert ops["tanh"] == "minigrad-edu" and ops["gelu"] == "minigrad-extras"
    table = in_venv("minigrad", "ops").stdout
    provider = re.escape(f"ops (minigrad-edu {PROJECTS[0]['version']})")
    assert re.search(rf"^tanh +1 +.*{provider}$", table, re.M), table


@pytest.mark.slow
def test_demo_trains_and_writes_its_files_where_the_user_stands(in_venv):
    result = in_venv("minigrad", "demo", "--steps", "5", "--out", "run")
    written = {path.name for path in (in_venv.cwd / "run").iterdir()}
    assert {"decision_boundary.png", "curves.png", "model.json"} <= written, result.stdout + result.stderr
    assert json.loads((in_venv.cwd / "run" / "model.json").read_text())["format"] == "minigrad-model"


@pytest.mark.slow
def test_explorer_page_is_built_from_the_wheel(in_venv, wheelhouse):
    result = in_venv("minigrad", "graph", "x*2", "x=1", "-o", "x.html")
    assert "wrote x.html" in result.stdout
    page = (in_venv.cwd / "x.html").read_text(encoding="utf-8")
    with zipfile.ZipFile(wheelhouse / GRAPHVIZ_WHEEL) as wheel:
        for asset in ("explorer.js", "explorer.css"):
            assert wheel.read(f"minigrad_graphviz/{asset}").decode("utf-8") in page, f"{asset} not inlined"
    assert "<svg" in page and 'id="minigrad-data"' in page


@pytest.mark.slow
def test_pytest_plugin_checks_every_installed_op(in_venv):
    n_ops = len(json.loads(in_venv("minigrad", "ops", "--json").stdout))
    # a fixed seed: the same examples on every run, as the suite's own derandomized profile draws
    check = ("--minigrad-check-ops", "--hypothesis-seed=0")
    result = in_venv("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *check)
    summary = result.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= n_ops and "failed" not in summary and "error" not in summary, summary


# -- imports declared (static, fast) -------------------------------------------------------------

STDLIB = set(sys.stdlib_module_names) | {"__future__"}
DEVELOPER_EXTRAS = {"test", "lint", "docs"}


def module_level_imports(path: Path) -> set[str]:
    """Top-level names imported when the module loads (not inside functions: those are optional)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_module_level_import_is_a_declared_dependency():
    """A plugin that imports a distribution it does not declare works editable and breaks installed.

    A module for an optional feature (``minigrad_nn.torch_bridge``, loaded only by ``to_torch``)
    may import what a user-facing extra declares; the developers' extras do not count."""
    providers = importlib.metadata.packages_distributions()
    problems = []
    for project in PROJECTS:
        user_extras = {k: v for k, v in project["extras"].items() if k not in DEVELOPER_EXTRAS}
        declared = {project["name"]} | {requirement_name(r) for r in project["dependencies"]}
        declared |= {requirement_name(r) for extra in user_extras.values() for r in extra}
        for package in project["packages"]:
            for path in sorted((project["folder"] / package).rglob("*.py")):
                for name in sorted(module_level_imports(path) - STDLIB):
                    dists = {d.lower().replace("_", "-") for d in providers.get(name, [name])}
                    if not dists & declared:
                        problems.append(f"{path.relative_to(ROOT)} imports {name} ({', '.join(sorted(dists))})")
    assert problems == [], f"undeclared dependencies: {problems}"


def test_the_test_extra_can_build_every_distribution():
    """The wheel test builds without isolation, so the test extra must hold every build requirement."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        test_extra = set(tomllib.load(file)["project"]["optional-dependencies"]["test"])
    for project in PROJECTS:
        with open(project["folder"] / "pyproject.toml", "rb") as file:
            build_requires = set(tomllib.load(file)["build-system"]["requires"])
        assert build_requires <= test_extra, f"{project['name']} builds with {build_requires - test_extra}"
    assert any(requirement_name(r) == "build" for r in test_extra)
