"""`scripts/dev` and `.ci/run`, run against stand-ins: what they install, check and run, and when.

Each test copies the two scripts into a folder laid out like the repository, with a `.venv` whose
`python`, `minigrad`, `ruff`, `mypy` and `mkdocs` are small shell scripts that write down how they
were called (and exit with a status the test chooses), and with `dpkg-query`, `apt-get` and
`sudo` stand-ins first on PATH. Nothing is installed and no network is used.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if shutil.which("sha256sum") is None:
    pytest.skip("scripts/dev needs coreutils' sha256sum", allow_module_level=True)

TOOL = """#!/usr/bin/env bash
echo "$(basename "$0") $* | cwd=$(pwd) | MINIGRAD_STRICT_SKIPS=${MINIGRAD_STRICT_SKIPS:-}" >> "$LOG"
"""
PYTHON = (
    TOOL
    + """
case "$1 ${2:-}" in
  "--version "*) echo "Python 3.11.0" ;;
  "-m pytest") exit "${PYTEST_STATUS:-0}" ;;
esac
exit 0
"""
)
FAILING_TOOL = TOOL + 'exit "${%s:-0}"\n'
DPKG_QUERY = """#!/usr/bin/env bash
for package in $INSTALLED; do [ "$package" = "${!#}" ] && { printf 'install ok installed'; exit 0; }; done
exit 1
"""


def write_tool(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def repo(tmp_path):
    """A stand-in checkout: the real scripts, two pyproject files, a .venv of recording tools."""
    root = tmp_path / "repo"
    for script in ("scripts/dev", ".ci/run"):
        (root / script).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / script, root / script)
    (root / "pyproject.toml").write_text('[project]\nname = "minigrad-edu"\n')
    (root / "plugins" / "minigrad_one").mkdir(parents=True)
    (root / "plugins" / "minigrad_one" / "pyproject.toml").write_text('[project]\nname = "minigrad-one"\n')
    venv_bin = root / ".venv" / "bin"
    write_tool(venv_bin / "python", PYTHON)
    write_tool(venv_bin / "minigrad", TOOL)
    write_tool(venv_bin / "ruff", FAILING_TOOL % "RUFF_STATUS")
    write_tool(venv_bin / "mypy", FAILING_TOOL % "MYPY_STATUS")
    write_tool(venv_bin / "mkdocs", TOOL)
    stand_ins = tmp_path / "bin"
    write_tool(stand_ins / "dpkg-query", DPKG_QUERY)
    write_tool(stand_ins / "apt-get", TOOL)
    write_tool(stand_ins / "sudo", '#!/usr/bin/env bash\nexec "$@"\n')
    write_tool(stand_ins / "chromedriver", TOOL)  # some chromedriver on PATH, not Debian's package
    return root


@pytest.fixture
def dev(repo, tmp_path):
    """Run ``bash scripts/dev ARGS`` from a folder of the user's; return (exit status, log lines, stderr)."""
    log = tmp_path / "calls.log"
    user_dir = tmp_path / "where the user stands"
    user_dir.mkdir()

    def run(*args: str, script: str = "scripts/dev", **env: str):
        log.write_text("")
        environment = {
            "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "LOG": str(log),
            "INSTALLED": "graphviz chromium chromium-driver",
            **env,
        }
        result = subprocess.run(
            ["bash", str(repo / script), *args],
            cwd=user_dir,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.returncode, log.read_text().splitlines(), result.stderr

    run.user_dir = user_dir
    return run


def pip_runs(calls: list[str]) -> list[str]:
    return [call for call in calls if call.startswith("python -m pip install")]


def test_demo_installs_once_then_runs_from_where_the_user_stands(dev, repo):
    status, calls, stderr = dev("demo", "--steps", "5")
    assert status == 0, stderr
    assert len(pip_runs(calls)) == 1
    assert "-e" in pip_runs(calls)[0] and f"{repo}[demo]" in pip_runs(calls)[0]
    assert "source .venv/bin/activate" in stderr  # how to get `minigrad` on PATH
    assert calls[-1].startswith(f"minigrad demo --steps 5 | cwd={dev.user_dir} |")

    status, calls, stderr = dev("demo", "--steps", "5")
    assert status == 0 and pip_runs(calls) == [], calls  # nothing changed: no pip at all
    assert calls[-1].startswith(f"minigrad demo --steps 5 | cwd={dev.user_dir} |")

    # a changed pyproject.toml (a new entry point, say) installs again
    with open(repo / "plugins" / "minigrad_one" / "pyproject.toml", "a") as file:
        file.write('[project.entry-points.minigrad]\none = "minigrad_one"\n')
    status, calls, _ = dev("demo")
    assert status == 0 and len(pip_runs(calls)) == 1


def test_test_installs_debian_packages_by_what_dpkg_says_not_by_path(dev):
    status, calls, stderr = dev("test", "-q", INSTALLED="graphviz")
    assert status == 0, stderr
    apt = [call for call in calls if call.startswith("apt-get install")]
    assert len(apt) == 1 and "chromium chromium-driver" in apt[0] and "graphviz" not in apt[0]
    status, calls, _ = dev("test", "-q")  # all installed: apt is left alone
    assert status == 0 and not [call for call in calls if call.startswith("apt-get")]


def test_test_runs_the_static_checks_then_pytest_with_strict_skips(dev, repo):
    status, calls, stderr = dev("test", "-q", "tests/x.py")
    assert status == 0, stderr
    setup = ("apt-get", "python -m pip", "python --")
    steps = [call.split(" | ")[0].strip() for call in calls if not call.startswith(setup)]
    assert steps == ["ruff check .", "ruff format --check .", "mypy", "python -m pytest -q tests/x.py"]
    pytest_call = next(call for call in calls if call.startswith("python -m pytest"))
    assert f"cwd={repo} |" in pytest_call and pytest_call.endswith("MINIGRAD_STRICT_SKIPS=1")


@pytest.mark.parametrize("failing", ["RUFF_STATUS", "MYPY_STATUS"])
def test_a_failed_static_check_fails_the_run_after_pytest_ran(dev, failing):
    status, calls, stderr = dev("test", "-q", **{failing: "1"})
    assert status == 1
    assert any(call.startswith("python -m pytest") for call in calls)  # the log shows the tests too
    assert "static check failed" in stderr


def test_pytest_collecting_nothing_fails_the_run(dev):
    status, _, stderr = dev("test", "-q", PYTEST_STATUS="5")
    assert status == 1 and "collected no tests" in stderr
    status, _, _ = dev("test", "-q", PYTEST_STATUS="1")
    assert status == 1


def test_ci_builds_the_docs_strict_then_runs_the_tests_and_fails_on_no_tests(dev):
    status, calls, _ = dev(script=".ci/run")
    assert status == 0
    steps = [call.split(" | ")[0].strip() for call in calls]
    assert "python scripts/check_docstrings.py" in steps
    assert any(step.startswith("mkdocs build") and "--strict" in step for step in steps)
    assert steps[-1] == "python -m pytest -q"
    status, _, _ = dev(script=".ci/run", PYTEST_STATUS="5")
    assert status != 0


def test_static_checks_are_configured_in_pyproject():
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as file:
        tools = tomllib.load(file)["tool"]
    assert {"E", "F", "I", "B"} <= set(tools["ruff"]["lint"]["select"])
    kernel = next(o for o in tools["mypy"]["overrides"] if o["module"] == "minigrad_core.*")
    assert kernel["disallow_untyped_defs"] and kernel["disallow_any_generics"]
    packages = [ROOT / name for name in ("minigrad_core", "minigrad_ops", "minigrad_nn")]
    packages += [path for path in ROOT.glob("plugins/*/minigrad_*") if (path / "__init__.py").exists()]
    assert len(packages) == 8
    for package in packages:
        assert (package / "py.typed").exists(), package


def test_check_docstrings_names_each_public_name_without_one(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_docstrings", ROOT / "scripts" / "check_docstrings.py")
    check_docstrings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_docstrings)
    package = tmp_path / "toy"
    package.mkdir()
    (package / "__init__.py").write_text(
        '"""A toy package."""\n'
        "from .impl import Documented, bare\n"
        '__all__ = ["Documented", "bare", "CONSTANT"]\n'
        "CONSTANT = 3\n"
    )
    (package / "impl.py").write_text(
        "class Documented:\n"
        '    """Has one."""\n'
        "    def public(self):\n"
        "        pass\n"
        "    def _private(self):\n"
        "        pass\n"
        "def bare():\n"
        "    pass\n"
    )
    monkeypatch.setattr(check_docstrings, "SEARCH_PATHS", [tmp_path])
    assert check_docstrings.check("toy") == ["toy.Documented.public (function)", "toy.bare (function)"]


def test_ci_fails_when_the_docs_fail_after_running_the_tests(dev, repo):
    (repo / ".venv" / "bin" / "mkdocs").write_text('#!/usr/bin/env bash\necho "mkdocs $*" >> "$LOG"\nexit 1\n')
    status, calls, stderr = dev(script=".ci/run")
    assert status == 1 and "docs build failed" in stderr
    assert any(call.startswith("python -m pytest") for call in calls)
