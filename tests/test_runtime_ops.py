"""Ops defined in a notebook cell: register, use, check, redefine and remove them, installing nothing."""

from __future__ import annotations

import math

import pytest

from minigrad_core import (
    OpSpec,
    RegistrationError,
    Registry,
    UnknownOpError,
    Value,
    get_registry,
    hookimpl,
    make_plugin_manager,
    op,
    ops,
    register_op,
    register_plugin,
    unregister_op,
    unregister_plugin,
    using,
)
from minigrad_core.cli import ops_table
from minigrad_testing import check_grads, check_op


@pytest.fixture(autouse=True)
def notebook():
    """A registry of the built-in ops only (found by entry point); whatever a test registers
    at run time goes into it and disappears with it."""
    with using(Registry(make_plugin_manager(selection={"ops"}))) as registry:
        yield registry


def cube_spec(**fields) -> OpSpec:
    return OpSpec(name="cube", arity=1, forward=lambda x: x**3, derivative=lambda x, out: (3 * x * x,), **fields)


def test_register_op_makes_a_method_and_a_function_then_unregister_removes_both():
    spec = register_op(cube_spec(formula="x ** 3"))
    assert spec.plugin == "runtime:cube" and get_registry().ops["cube"] is spec
    x = Value(2.0)
    y = x.cube()
    y.backward()
    assert (y.data, x.grad, y._op) == (8.0, 12.0, "cube")
    assert ops.cube(3.0) == 27.0
    row = next(r for r in ops_table(get_registry()) if r["name"] == "cube")
    assert row["plugin"] == "runtime:cube" and row["formula"] == "x ** 3"

    unregister_op("cube")
    assert "cube" not in get_registry().ops
    with pytest.raises(UnknownOpError, match="unknown op 'cube'"):
        Value(2.0).cube()
    with pytest.raises(UnknownOpError, match="unknown op 'cube'"):
        ops.cube(2.0)


def test_the_op_decorator_registers_and_returns_the_op_as_a_function():
    @op(derivative=lambda x, out: (1 - out * out,), formula="tanh(x) written out", torch=lambda x: x.tanh())
    def my_tanh(x):
        return math.tanh(x)

    assert my_tanh.spec.name == "my_tanh" and my_tanh.spec.arity == 1
    assert my_tanh(0.5) == math.tanh(0.5)  # on a number it computes
    x = Value(0.5)
    y = my_tanh(x)  # on a Value it records a node of the new op
    assert y._op == "my_tanh" and y._prev == (x,)
    assert Value(0.5).my_tanh().data == math.tanh(0.5)
    assert check_op("my_tanh", order=2).oracles == ("finite differences", "PyTorch")
    unregister_op("my_tanh")
    assert not hasattr(Value(1.0), "my_tanh")


def test_the_decorator_takes_parameters_and_binary_forwards():
    @op(derivative=lambda x, out, k: (k * out,), params={"k": 1.0})
    def scaled_exp(x, k):
        return math.exp(k * x)

    @op(derivative=lambda a, b, out: (b / (2 * out), a / (2 * out)), methods=("geo",))
    def geometric_mean(a, b):
        return math.sqrt(a * b)

    assert scaled_exp.spec.arity == 1 and scaled_exp.spec.params == {"k": 1.0}
    assert Value(1.0).scaled_exp(2.0).data == math.exp(2.0)
    assert geometric_mean.spec.arity == 2
    a, b = Value(2.0), Value(8.0)
    m = a.geo(b)
    m.backward()
    assert (m.data, a.grad, b.grad) == (4.0, 8.0 / 4.0 / 2, 2.0 / 4.0 / 2)
    check_grads(lambda a, b: a.geo(b), 2.0, 8.0)


def test_running_a_cell_again_redefines_its_op():
    register_op(OpSpec(name="bump", arity=1, forward=lambda x: x + 1, derivative=lambda x, out: (1.0,)))
    assert Value(1.0).bump().data == 2.0
    register_op(OpSpec(name="bump", arity=1, forward=lambda x: x + 2, derivative=lambda x, out: (1.0,)))
    assert Value(1.0).bump().data == 3.0
    assert [name for name in get_registry().plugins if name.startswith("runtime:")] == ["runtime:bump"]


def test_a_failed_redefinition_keeps_the_earlier_op():
    register_op(cube_spec())
    with pytest.raises(RegistrationError, match="operator __neg__ is claimed by op 'neg'"):
        register_op(cube_spec(operators=("__neg__",)))
    assert Value(2.0).cube().data == 8.0 and (-Value(2.0)).data == -2.0


def test_a_clash_with_an_installed_op_names_both_and_changes_nothing():
    my_tanh = OpSpec(name="tanh", arity=1, forward=lambda x: 0.0, derivative=lambda x, out: (0.0,))
    with pytest.raises(RegistrationError) as info:
        register_op(my_tanh)
    assert "plugin 'ops'" in str(info.value) and "plugin 'runtime:tanh'" in str(info.value)
    assert "replace=True" in str(info.value)
    assert Value(0.5).tanh().data == math.tanh(0.5)  # the built-in still works

    register_op(my_tanh, replace=True)  # deliberately
    assert Value(0.5).tanh().data == 0.0 and get_registry().ops["tanh"].plugin == "runtime:tanh"
    unregister_op("tanh")
    assert Value(0.5).tanh().data == math.tanh(0.5)  # the built-in is back


def test_an_installed_op_cannot_be_unregistered_as_a_runtime_op():
    with pytest.raises(
        RegistrationError,
        match=r"op 'tanh' was not registered at run time; it comes from "
        r"plugin 'ops'",
    ):
        unregister_op("tanh")


def test_a_method_name_that_would_replace_value_itself_is_refused_before_anything_changes():
    backward = Value.backward
    with pytest.raises(
        RegistrationError, match=r"op 'backward' \(plugin 'runtime:backward'\) would replace Value's own"
    ):
        register_op(OpSpec(name="backward", arity=1, forward=lambda x: x, derivative=lambda x, out: (1.0,)))
    assert Value.backward is backward and (Value(1.0) + 1).data == 2.0


class Trig:
    """A plugin object with two ops, as one would write it in a notebook."""

    @hookimpl
    def minigrad_register_ops(self, register):
        register(OpSpec(name="sine", arity=1, forward=math.sin, derivative=lambda x, out: (ops.cosine(x),)))
        register(OpSpec(name="cosine", arity=1, forward=math.cos, derivative=lambda x, out: (-ops.sine(x),)))


def test_register_plugin_adds_a_plugin_object_and_unregister_plugin_removes_it():
    plugin = Trig()
    name = register_plugin(plugin)
    assert name == "Trig" and get_registry().plugins["Trig"].provides == {"ops": ["sine", "cosine"]}
    assert check_grads(lambda x: x.sine() * x.cosine(), 0.7, order=2)
    unregister_plugin(plugin)
    assert "sine" not in get_registry().ops

    register_plugin(plugin, name="trig")
    assert get_registry().ops["cosine"].plugin == "trig"
    unregister_plugin("trig")
    with pytest.raises(KeyError, match="no plugin named 'trig'"):
        unregister_plugin("trig")


def test_a_hook_without_the_marker_is_refused_with_a_hint():
    class Forgetful:
        def minigrad_register_ops(self, register):
            register(cube_spec())

    with pytest.raises(
        RegistrationError,
        match=r"plugin 'Forgetful' defines minigrad_register_ops but does not mark "
        r"it with @hookimpl",
    ):
        register_plugin(Forgetful())
    assert "Forgetful" not in get_registry().plugins


def test_a_misspelt_hook_is_refused_naming_the_hooks():
    class Typo:
        @hookimpl
        def minigrad_register_op(self, register):
            register(cube_spec())

    with pytest.raises(
        RegistrationError,
        match=r"plugin 'Typo' implements 'minigrad_register_op', which is not a "
        r"MiniGrad hook; the hooks are: minigrad_register_commands",
    ):
        register_plugin(Typo())
    assert "Typo" not in get_registry().plugin_manager.minigrad_info
    register_plugin(Typo.__new__(Trig))  # the manager is still usable afterwards
    assert "sine" in get_registry().ops


def test_runtime_ops_leave_the_installed_registry_alone(notebook):
    register_op(cube_spec())
    with using(Registry(make_plugin_manager(selection={"ops"}))) as fresh:
        assert "cube" not in fresh.ops and not hasattr(Value(1.0), "cube")
    assert Value(2.0).cube().data == 8.0
