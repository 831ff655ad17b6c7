"""Installed with pip into a fresh virtual environment, the package is found by its entry point
alone and its own tests pass there.

The fresh environment gets copies of MiniGrad and of this package, installed with pip from
their folders (not editable). Their third-party dependencies (numpy, pluggy, pytest,
hypothesis, torch ...) are borrowed from the environment running this test through a
``.pth`` file, which lists them one by one and leaves every MiniGrad distribution out: so
the only way MiniGrad can know about this package is the entry point pip just installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]  # plugins/minigrad_extras
ROOT = HERE.parents[1]  # the MiniGrad repository
MINIGRAD_PARTS = ("pyproject.toml", "README.md", "minigrad_core", "minigrad_ops", "minigrad_nn")


def run(*command, cwd, env, timeout=300):
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    if not (ROOT / "minigrad_core").is_dir():
        pytest.skip("MiniGrad's sources are not beside this package")
    base = tmp_path_factory.mktemp("fresh-install")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".hypothesis")
    sources = base / "src"
    for part in MINIGRAD_PARTS:
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, sources / "minigrad" / part, ignore=ignore)
        elif (ROOT / part).exists():
            (sources / "minigrad").mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / part, sources / "minigrad" / part)
    shutil.copytree(HERE, sources / "extras", ignore=ignore)
    shutil.copytree(ROOT / "plugins" / "minigrad_testing", sources / "testing", ignore=ignore)  # the kit
    # the package's tests draw a graph with these ops: graphviz (and the explain plugin it builds on)
    shutil.copytree(ROOT / "plugins" / "minigrad_explain", sources / "explain", ignore=ignore)
    shutil.copytree(ROOT / "plugins" / "minigrad_graphviz", sources / "graphviz", ignore=ignore)

    venv = base / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MINIGRAD_PLUGINS", "VIRTUAL_ENV")}
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base, env=env)
    python = venv / "bin" / "python"
    site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=base, env=env).stdout.strip()
    )
    borrowed = base / "borrowed"
    borrowed.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        name = entry.name.lower()
        if "minigrad" in name or name.startswith("__editable__") or name.endswith(".pth") or name == "__pycache__":
            continue  # every MiniGrad distribution, and the hooks of editable installs
        (borrowed / entry.name).symlink_to(entry)
    (site / "borrowed_dependencies.pth").write_text(f"{borrowed}\n")

    run(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        sources / "minigrad",
        sources / "testing",
        sources / "explain",
        sources / "graphviz",
        sources / "extras",
        cwd=base,
        env=env,
    )
    return {"python": python, "bin": venv / "bin", "base": base, "sources": sources, "env": env}


def test_the_fresh_environment_has_only_the_installed_copies(fresh):
    where = run(
        fresh["python"],
        "-c",
        "import minigrad_core, minigrad_extras; print(minigrad_core.__file__); print(minigrad_extras.__file__)",
        cwd=fresh["base"],
        env=fresh["env"],
    ).stdout.split()
    venv = str(fresh["bin"].parent)
    assert all(path.startswith(venv) for path in where), where


def test_minigrad_ops_lists_the_package_as_the_provider(fresh):
    env = {**fresh["env"], "MINIGRAD_PLUGINS": "ops,extras"}
    rows = json.loads(run(fresh["bin"] / "minigrad", "ops", "--json", cwd=fresh["base"], env=env).stdout)
    providers = {row["name"]: (row["plugin"], row["distribution"]) for row in rows}
    for name in ("sin", "cos", "erf", "softplus", "gelu", "leaky_relu", "hypot"):
        assert providers[name] == ("extras", "minigrad-extras")
    assert providers["tanh"] == ("ops", "minigrad-edu")


def test_the_package_s_own_tests_and_the_op_checks_pass_there(fresh):
    tests = fresh["sources"] / "extras" / "tests" / "test_extras_ops.py"
    result = run(
        fresh["python"],
        "-m",
        "pytest",
        tests,
        "-v",
        "-p",
        "no:cacheprovider",
        "--minigrad-plugin=extras",
        "--minigrad-max-order=1",
        cwd=fresh["base"],
        env=fresh["env"],
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, result.stdout
    # the op checks ran, one per op of this package, each passed (-v shows each test's outcome)
    passed_checks = {
        line.split("check_op[")[1].split("]")[0]
        for line in result.stdout.splitlines()
        if "minigrad::check_op[" in line and " PASSED" in line
    }
    assert {"sin", "cos", "erf", "softplus", "gelu", "leaky_relu", "hypot"} <= passed_checks, result.stdout
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 30 + 7  # the package's tests and one op check per op


def test_nothing_in_minigrad_names_this_package():
    if not (ROOT / "minigrad_core").is_dir():
        pytest.skip("MiniGrad's sources are not beside this package")
    for package in ("minigrad_core", "minigrad_ops", "minigrad_nn"):
        for source in (ROOT / package).rglob("*.py"):
            assert "minigrad_extras" not in source.read_text(), f"{source} names minigrad_extras"
