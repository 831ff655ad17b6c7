"""The skip policy of the root conftest.py: with MINIGRAD_STRICT_SKIPS=1 a skip whose reason is not
on the allow-list fails the run; allowed skips, xfails and runs without the variable stay as they were.

Each case is a pytest session in a temporary folder (pytester) whose conftest.py is the
repository's own, so what is tested is exactly what CI runs.
"""

import importlib.util
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def _load_root_conftest():
    # by path: in a whole-suite run, the name "conftest" may be another folder's conftest.py
    spec = importlib.util.spec_from_file_location("minigrad_root_conftest", ROOT_CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


root_conftest = _load_root_conftest()
ALLOWED_REASON = "no torch equivalent to compare with"  # on the allow-list (tests/test_higher_order.py)

TESTS = f"""
import pytest

def test_passes():
    assert True

def test_skips_for_no_good_reason():
    pytest.skip("needs Graphviz's dot")

@pytest.mark.skipif(True, reason="needs chromium")
def test_skipped_by_a_marker():
    pass

@pytest.mark.skip(reason={ALLOWED_REASON!r})
def test_skipped_with_an_allowed_reason():
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_to_fail():
    assert False
"""


@pytest.fixture
def project(pytester):
    pytester.makeconftest(ROOT_CONFTEST.read_text(encoding="utf-8"))
    pytester.makepyfile(test_things=TESTS)
    return pytester


def test_without_the_variable_skips_are_skips(project, monkeypatch):
    monkeypatch.delenv(root_conftest.STRICT_SKIPS, raising=False)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)
    assert result.ret == 0


def test_strict_skips_fail_the_run_and_name_the_test_and_reason(project, monkeypatch):
    monkeypatch.setenv(root_conftest.STRICT_SKIPS, "1")
    result = project.runpytest("-p", "no:cacheprovider", "-rA")
    # a skip inside the test fails it; a skipif marker acts in setup, so it shows as an error
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1, xfailed=1)
    assert result.ret != 0
    output = result.stdout.str()
    assert "unexpected skip (MINIGRAD_STRICT_SKIPS=1): test_things.py::test_skips_for_no_good_reason" in output
    assert '"needs Graphviz\'s dot"' in output and "'needs chromium'" in output
    assert "ALLOWED_SKIPS in conftest.py" in output


def test_a_module_skipped_at_import_fails_too(pytester, monkeypatch):
    pytester.makeconftest(ROOT_CONFTEST.read_text(encoding="utf-8"))
    pytester.makepyfile(
        test_module='import pytest\npytest.importorskip("no_such_module_here")\n\ndef test_never_runs():\n    pass\n',
        test_other="def test_runs():\n    pass\n",
    )
    monkeypatch.setenv(root_conftest.STRICT_SKIPS, "1")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*unexpected skip*no_such_module_here*"])
    monkeypatch.setenv(root_conftest.STRICT_SKIPS, "0")  # "0" means off
    assert pytester.runpytest("-p", "no:cacheprovider").ret == pytest.ExitCode.OK


def test_every_allowed_skip_says_why_and_matches_what_it_allows():
    assert root_conftest.ALLOWED_SKIPS
    for allowed in root_conftest.ALLOWED_SKIPS:
        assert len(allowed.why) > 40, allowed
    assert root_conftest.allowed_skip(ALLOWED_REASON) is not None
    assert root_conftest.allowed_skip("needs Graphviz's dot") is None
    assert root_conftest.allowed_skip("needs chromium and chromedriver") is None
