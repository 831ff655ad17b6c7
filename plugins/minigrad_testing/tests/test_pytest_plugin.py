"""The pytest plugin shipped with MiniGrad: one gradient-check test per registered op.

Each run is a pytest session in a temporary folder (pytester) whose conftest.py registers
ops the way a notebook would. In-process runs happen inside an isolated registry of the
built-in ops, so what they register disappears afterwards; subprocess runs get
MINIGRAD_PLUGINS=ops, so only the built-ins and the test's own ops are there.
"""

from __future__ import annotations

import numpy  # noqa: F401
import pytest
import torch  # noqa: F401

# In-process runs forget the modules they import; numpy and torch cannot be imported twice,
# so they (and the ops that use them) are imported here, once.
import minigrad_ops  # noqa: F401
import minigrad_testing  # noqa: F401
from minigrad_core import Registry, make_plugin_manager, using

pytest_plugins = ["pytester"]

CONFTEST = """
import math
from minigrad_core import OpSpec, register_op

# x * x declared with derivative x: wrong
register_op(OpSpec(name="square", arity=1, forward=lambda x: x * x, derivative=lambda x, out: (x,)))
# right, and differentiable twice
register_op(OpSpec(name="cube", arity=1, forward=lambda x: x ** 3, derivative=lambda x, out: (3 * x * x,),
                   torch=lambda x: x ** 3))
# right, but its rule works on numbers only
register_op(OpSpec(name="wave", arity=1, forward=math.sin, derivative=lambda x, out: (math.cos(x),)))
"""


@pytest.fixture
def project(pytester, monkeypatch):
    monkeypatch.setenv("MINIGRAD_PLUGINS", "ops")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_nothing="def test_the_project_s_own_test():\n    assert True\n")
    return pytester


def run(project, *args):
    with using(Registry(make_plugin_manager(selection={"ops"}))):
        return project.runpytest_inprocess("-p", "no:cacheprovider", *args)


def run_in_a_new_process(project, *args):
    return project.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_a_wrong_derivative_fails_with_the_kit_s_report(project):
    result = run_in_a_new_process(project, "--minigrad-ops=square")
    result.assert_outcomes(passed=1, failed=2)  # the project's own test passes; order 1 and 2 of square fail
    result.stdout.fnmatch_lines(
        [
            "*Gradient check failed for op 'square' (plugin 'runtime:square'): square(x)",
            "*d out / d x:",
            "*the rule under test:*",
            "*finite differences:*WRONG: off by*",
            "FAILED minigrad::check_op[[]square[]] - GradientCheckError: Gradient check failed*",
            "FAILED minigrad::check_op[[]square-order2[]] - GradientCheckError*",
        ]
    )


def test_a_correct_op_passes_both_orders(project):
    result = run(project, "--minigrad-ops=cube", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*minigrad::check_op[[]cube[]] PASSED*", "*minigrad::check_op[[]cube-order2[]] PASSED*"]
    )


def test_order_two_is_skipped_for_a_numbers_only_rule(project):
    result = run(project, "--minigrad-ops=wave", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(
        ["*second order not supported*op 'wave' (plugin 'runtime:wave') cannot be differentiated twice*"]
    )


def test_the_one_line_for_ci_checks_every_op_of_a_plugin(project):
    result = run(project, "--minigrad-plugin=ops", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["minigrad::check_op[[]add[]]", "minigrad::check_op[[]add-order2[]]", "minigrad::check_op[[]tanh-order2[]]"]
    )
    assert "square" not in result.stdout.str() and "test_nothing.py::test_the_project_s_own_test" in result.stdout.str()
    every_op = run(project, "--minigrad-check-ops", "--collect-only", "-q")
    every_op.stdout.fnmatch_lines(["minigrad::check_op[[]square[]]", "minigrad::check_op[[]tanh[]]"])
    assert "35 tests collected" in every_op.stdout.str()  # 17 ops x 2 orders + the project's test


def test_options_can_live_in_the_configuration_and_k_selects_op_checks(project):
    project.makeini("[pytest]\nminigrad_check_ops = true\n")
    result = run(project, "--collect-only", "-q", "-k", "cube or wave", "--minigrad-max-order=1")
    result.stdout.fnmatch_lines(
        ["minigrad::check_op[[]cube[]]", "minigrad::check_op[[]wave[]]", "*2/18 tests collected (16 deselected)*"]
    )


def test_without_the_option_nothing_is_added(project):
    result = run(project)
    result.assert_outcomes(passed=1)


def test_an_unknown_op_or_plugin_is_a_failing_test_that_lists_what_exists(project):
    result = run(project, "--minigrad-ops=sqaure", "--minigrad-plugin=nope")
    result.assert_outcomes(passed=1, failed=2)  # one failing test per mistake
    result.stdout.fnmatch_lines(
        [
            "*--minigrad-plugin names [[]'nope'], which are not loaded; loaded plugins: ops, runtime:cube*",
            "*--minigrad-ops names [[]'sqaure'], which no loaded plugin provides; known ops: abs, add, cube*",
        ]
    )


def test_a_broken_plugin_setup_is_one_failing_test_naming_the_cause(project, monkeypatch):
    monkeypatch.setenv("MINIGRAD_PLUGINS", "ops,not_installed")
    project.makeconftest("")  # no runtime ops
    result = run_in_a_new_process(project, "--minigrad-check-ops")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*MINIGRAD_PLUGINS names [[]'not_installed'], which no installed distribution provides*"]
    )
