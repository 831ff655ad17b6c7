"""The kernel holds no math: with only a toy plugin it computes, differentiates and explains errors."""

import json
import os
import re
import subprocess
import sys

import pytest

from minigrad_core import (
    MissingRuleError,
    OpSpec,
    OpSpecError,
    RegistrationError,
    Registry,
    UnknownOpError,
    Value,
    get_registry,
    hookimpl,
    ops,
    using,
)
from minigrad_core.cli import main as cli_main


class ToyOps:
    """Two ops only: an affine 'scale_shift' (unary, parameters) and 'times' (binary, operator *)."""

    @hookimpl
    def minigrad_register_ops(self, register):
        register(
            OpSpec(
                name="times",
                arity=2,
                symbol="×",
                forward=lambda a, b: a * b,
                derivative=lambda a, b, out: (b, a),
                operators=("__mul__", "__rmul__"),
            )
        )
        register(
            OpSpec(
                name="scale_shift",
                arity=1,
                params={"scale": 2.0, "shift": 0.0},
                forward=lambda x, scale, shift: scale * x + shift,
                derivative=lambda x, out, scale, shift: (scale,),
            )
        )
        register(
            OpSpec(
                name="total", arity=None, forward=lambda *xs: sum(xs), derivative=lambda *args: (1.0,) * (len(args) - 1)
            )
        )


@pytest.fixture
def toy():
    with using(Registry.from_plugins(ToyOps())) as registry:
        yield registry


def test_kernel_computes_with_a_toy_plugin_and_no_builtin_ops(toy):
    assert set(toy.ops) == {"times", "scale_shift", "total"}
    assert "minigrad_ops" not in str(toy.plugins)
    x, y = Value(3.0), Value(4.0)
    z = (x * y).scale_shift(shift=1.0)  # 2 * (x*y) + 1
    w = ops.total(z, x, 5)  # variadic: z + x + 5
    w.backward()
    assert w.data == 25.0 + 3.0 + 5.0
    assert (x.grad, y.grad) == (2 * 4.0 + 1.0, 2 * 3.0)
    assert z._op == "scale_shift(scale=2, shift=1)"


def test_without_an_add_op_plus_says_what_is_missing(toy):
    with pytest.raises(UnknownOpError, match=r"__add__.*known ops: scale_shift, times, total"):
        Value(1.0) + 2
    with pytest.raises(AttributeError, match="unknown op 'tanh'"):
        Value(1.0).tanh()
    assert not hasattr(Value(1.0), "tanh")
    with pytest.raises(AttributeError, match=r"not a Value method; call it as minigrad_core.ops.total"):
        Value(1.0).total(2.0)


def test_with_no_op_at_all_the_error_says_none_is_registered():
    with using(Registry.from_plugins()):
        with pytest.raises(UnknownOpError, match="No op is registered"):
            Value(1.0) * 2
        leaf = Value(2.0)
        leaf.backward()  # a graph of one leaf needs no op
        assert leaf.grad == 1.0


def test_builtin_ops_return_after_an_isolated_registry():
    with using(Registry.from_plugins(ToyOps())):
        pass
    assert (Value(1.0) + 2).data == 3.0 and "add" in get_registry().ops


def test_two_plugins_registering_one_name_is_an_error_naming_both():
    class Clash:
        @hookimpl
        def minigrad_register_ops(self, register):
            register(OpSpec(name="times", arity=2, forward=lambda a, b: a * b, derivative=lambda a, b, out: (b, a)))

    with pytest.raises(RegistrationError) as info:
        Registry.from_plugins(ToyOps(), Clash())
    assert "ToyOps" in str(info.value) and "Clash" in str(info.value) and "'times'" in str(info.value)


def test_explicit_replace_overrides_an_op():
    class Better:
        @hookimpl
        def minigrad_register_ops(self, register):
            register(
                OpSpec(
                    name="times",
                    arity=2,
                    forward=lambda a, b: a * b + 0.0,
                    derivative=lambda a, b, out: (b, a),
                    operators=("__mul__", "__rmul__"),
                ),
                replace=True,
            )

    for order in ((ToyOps(), Better()), (Better(), ToyOps())):  # load order must not matter
        registry = Registry.from_plugins(*order)
        assert registry.ops["times"].plugin == "Better"


def test_a_derivative_with_the_wrong_number_of_partials_is_caught_with_the_op_name():
    class Sloppy:
        @hookimpl
        def minigrad_register_ops(self, register):
            register(OpSpec(name="halve", arity=1, forward=lambda x: x / 2, derivative=lambda x, out: (0.5, 0.0)))

    with using(Registry.from_plugins(Sloppy())):
        y = Value(1.0).halve()
        with pytest.raises(OpSpecError, match=r"op 'halve' \(plugin 'Sloppy'\).*one partial per input.*returned 2"):
            y.backward()


def test_a_forward_with_the_wrong_arity_is_refused_when_declared():
    with pytest.raises(OpSpecError, match=r"op 'bad'.*forward.*1 positional"):
        OpSpec(name="bad", arity=1, forward=lambda a, b: a, derivative=lambda a, b, out: (1, 1))


def test_an_unknown_op_lists_the_known_ones():
    with pytest.raises(UnknownOpError) as info:
        get_registry().get("sine")
    assert "unknown op 'sine'" in str(info.value) and "tanh" in str(info.value)


def _run(code, **env):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_minigrad_plugins_env_chooses_plugins():
    none = _run("from minigrad_core import Value\nValue(1) + 1", MINIGRAD_PLUGINS="")
    assert none.returncode != 0 and "No op is registered (MINIGRAD_PLUGINS='' chose none)" in none.stderr
    only_ops = _run("from minigrad_core import get_registry as g\nprint(sorted(g().plugins))", MINIGRAD_PLUGINS="ops")
    assert only_ops.stdout.strip() == "['ops']"
    typo = _run("from minigrad_core import Value\nValue(1) + 1", MINIGRAD_PLUGINS="ops,nope")
    assert "MINIGRAD_PLUGINS names ['nope']" in typo.stderr


def test_cli_ops_json_lists_ops_with_their_provider(capsys):
    assert cli_main(["ops", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["tanh"]["plugin"] == "ops" and rows["tanh"]["distribution"] == "minigrad-edu"
    assert rows["tanh"]["arity"] == 1 and rows["tanh"]["formula"] == "tanh(x)" and rows["add"]["version"]


def test_cli_plugins_table_and_json(capsys):
    assert cli_main(["plugins"]) == 0
    table = capsys.readouterr().out
    assert "ops" in table and "minigrad-edu" in table and "tanh" in table
    assert cli_main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert "add" in plugins["ops"]["provides"]["ops"]


def test_cli_runs_as_a_console_script():
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "minigrad"), "ops"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "sigmoid" in result.stdout


def test_a_derivative_returning_a_bare_number_is_caught_with_the_op_name():
    class Forgetful:
        @hookimpl
        def minigrad_register_ops(self, register):
            register(OpSpec(name="ident", arity=1, forward=lambda x: x, derivative=lambda x, out: 1.0))

    with using(Registry.from_plugins(Forgetful())):
        with pytest.raises(OpSpecError, match=r"op 'ident' \(plugin 'Forgetful'\).*returned 1.0.*tuple"):
            Value(2.0).ident().backward()


def test_names_given_as_a_string_instead_of_a_tuple_are_refused():
    with pytest.raises(OpSpecError, match="methods must be a tuple"):
        OpSpec(name="square", arity=1, forward=lambda x: x * x, derivative=lambda x, out: (2 * x,), methods="sq")


def test_registering_one_plugin_name_twice_says_how_to_replace_it():
    from minigrad_core import register_plugin, unregister_plugin

    class Twice:
        @hookimpl
        def minigrad_register_ops(self, register):
            pass

    register_plugin(Twice())
    try:
        with pytest.raises(RegistrationError, match=r"'Twice' is already registered: unregister_plugin\('Twice'\)"):
            register_plugin(Twice())
    finally:
        unregister_plugin("Twice")


def test_a_plugin_command_may_not_take_a_builtin_name():
    class Squatter:
        @hookimpl
        def minigrad_register_commands(self, register):
            register("ops", "mine", lambda parser: None, lambda args: 0)

    with pytest.raises(RegistrationError, match="'ops' is a built-in minigrad command"):
        Registry.from_plugins(Squatter())


def test_a_bare_node_naming_an_op_it_cannot_be_keeps_its_text_and_needs_a_closure():
    # "**" needs its exponent and "add" two inputs: the node keeps the text as its label only
    for text in ("**", "add"):
        node = Value(4.0, (Value(2.0),), text)
        assert node._op == text and node.op_spec is None
        with pytest.raises(MissingRuleError, match=f"_op='{re.escape(text)}'.*_backward.*register an OpSpec"):
            node.backward()
