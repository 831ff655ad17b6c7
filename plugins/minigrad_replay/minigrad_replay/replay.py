"""Graph replay: record a function's graph once, then run it again on new numbers.

Building a ``Value`` per operation is what makes a scalar engine slow; the graph of a
training step is the same from one step to the next, only the numbers change. So:

    tape = record(loss_fn, X, y)     # runs loss_fn once on Values and keeps its graph
    loss = tape.backward(X, y)       # forward and backward on plain floats; the
                                     # parameters' .grad are filled in as by loss.backward()

``record`` turns the graph into straight-line Python, which you can read in
``tape.source``. Forward: one line per node, calling the op's own forward rule
(``v3 = forward_tanh(v2)``). Backward: per node, the kernel's ``local_derivatives`` (the
one function that calls an op's derivative rule) gives its partials, and each node's
gradient is the sum over its users of ``partial * user.grad``, added in the order the
kernel's ``child.grad += partial * node.grad`` adds them. Each op's math is written once,
in its rules, so replay gives ``backward()``'s numbers bit for bit. Leaves that are the
function's arguments become its inputs; every other leaf (a model's parameters,
constants) is read from its ``.data`` at each replay, so an optimizer's updates are seen.

A recorded graph stays valid only while Python's control flow takes the same path.
Every comparison of Values made while recording (``if x > 0:``), in the recording's own
thread, becomes a guard: when a replay would go the other way, it raises
``GraphChangedError`` instead of returning numbers of another function. Branches inside
an op (relu at 0) need no guard. ``Recorder(f)`` records on first use and again whenever
that happens; ``tape.verify`` traces ``f`` anew and checks that the tape still fits it.

``tape.batched()`` evaluates the same per-example graph for a whole batch at once with
numpy. Each op runs on arrays through its ``np_forward`` / ``np_derivative`` if it gives
them, else through its own rules, which run on arrays when they are plain arithmetic; an
op whose rules cannot (a Python ``if`` on the input) is evaluated one example at a time,
with a ``ReplayFallbackWarning``. That is decided per op at the first batched run.

``BatchedRecorder(f)`` (the ``batched`` engine) evaluates ``f``'s whole recorded graph
with numpy, level by level: every node of one op at one depth of the graph in one array
operation. It takes ``f``'s arguments as they are; its numbers equal eager's up to
rounding (the gradient sums are added in another order).
"""

from __future__ import annotations

import inspect
import itertools
import keyword
import linecache
import math
import numbers
import operator
import re
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from minigrad_core import (
    COMPARE,
    MiniGradError,
    MissingRuleError,
    Value,
    comparison_observers,
    evaluate,
    local_derivatives,
    shorten,
    topological_order,
)
from minigrad_core.value import bad_partial_error

from .lifting import CannotLift, LiftedProgram

__all__ = [
    "record",
    "record_batch",
    "Recorder",
    "BatchedRecorder",
    "LiftedRecorder",
    "Tape",
    "BatchedTape",
    "GraphChangedError",
    "ReplayArgumentError",
    "ReplayFallbackWarning",
]


class GraphChangedError(MiniGradError):
    """The recorded graph no longer fits: Python would take another path, or ``f`` now builds
    another graph. Record again."""


class ReplayArgumentError(MiniGradError, TypeError):
    """A replay was given arguments of another count or shape than the ones it was recorded with."""


class ReplayFallbackWarning(UserWarning):
    """Batched replay met an op whose rules cannot run on numpy arrays and evaluates it one
    example at a time."""


# ---------------------------------------------------------------------------------------------
# Names that reach generated source: never pasted as given
# ---------------------------------------------------------------------------------------------

_NOT_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_<>.]")
_MAX_NAME = 80


def _clean(text: str) -> str:
    """``text`` with every character other than ASCII letters, digits, ``_ < > .`` replaced
    by ``_``: safe inside generated source (a comment cannot be ended by a newline in it)
    and in messages."""
    return _NOT_NAME_CHARACTER.sub("_", text)[:_MAX_NAME]


def _function_name(f) -> str:
    """``f.__name__`` (a callable object: its class's name), cleaned by ``_clean``."""
    try:
        name = getattr(f, "__name__", None)
    except Exception:  # a property that raises
        name = None
    if not isinstance(name, str) or not name:
        name = type(f).__name__
    return _clean(name) or "f"


def _identifier(text: str) -> str:
    """A Python identifier made from ``text`` (for global names in generated code)."""
    name = re.sub(r"\W", "_", text, flags=re.ASCII) or "_"
    return name if not name[0].isdigit() and not keyword.iskeyword(name) else f"_{name}"


# ---------------------------------------------------------------------------------------------
# Arguments: nested lists / tuples / arrays of numbers, flattened into one list of leaves
# ---------------------------------------------------------------------------------------------

LEAF = None  # the structure of a single number; a sequence's structure is the tuple of its items'


def _structure_and_leaves(obj, where: str, leaves: list) -> Any:
    """The nested shape of ``obj`` (LEAF or a tuple of shapes); its numbers go to ``leaves``."""
    if isinstance(obj, (Value, numbers.Real)):
        leaves.append(obj)
        return LEAF
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)):
        return tuple(_structure_and_leaves(item, f"{where}[{i}]", leaves) for i, item in enumerate(obj))
    raise ReplayArgumentError(
        f"{where} is {shorten(obj)} of type {type(obj).__name__}; replay takes numbers, Values, and "
        f"(nested) lists, tuples or numpy arrays of them"
    )


def _describe_structure(structure) -> str:
    if structure is LEAF:
        return "a number"
    if all(item is LEAF for item in structure):
        return f"a sequence of {len(structure)} numbers"
    return f"a sequence of {len(structure)} items"


def _flatten_like(obj, structure, where: str, numbers_out: list, values_out: list | None) -> None:
    """Append ``obj``'s numbers to ``numbers_out`` checking it has the recorded ``structure``."""
    if structure is LEAF:
        kind = type(obj)
        if kind is float:
            numbers_out.append(obj)
        elif kind is Value:
            numbers_out.append(obj.data)
            if values_out is not None:
                values_out.append((len(numbers_out) - 1, obj))
        elif isinstance(obj, numbers.Real):
            numbers_out.append(float(obj))
        else:
            raise ReplayArgumentError(f"{where}: expected a number, got {shorten(obj)} ({type(obj).__name__})")
        return
    if isinstance(obj, np.ndarray):
        if obj.ndim == 1 and len(obj) == len(structure) and all(item is LEAF for item in structure):
            numbers_out.extend(obj.astype(float).tolist())
            return
        obj = obj.tolist()
    if not isinstance(obj, (list, tuple)):
        raise ReplayArgumentError(f"{where}: expected {_describe_structure(structure)}, got {shorten(obj)}")
    if len(obj) != len(structure):
        raise ReplayArgumentError(
            f"{where}: expected {_describe_structure(structure)} as when recorded, got {len(obj)} items"
        )
    for i, (item, item_structure) in enumerate(zip(obj, structure)):
        if item_structure is LEAF and type(item) is float:  # the common case, inline
            numbers_out.append(item)
        else:
            _flatten_like(item, item_structure, f"{where}[{i}]", numbers_out, values_out)


def _unflatten(structure, flat, position: list):
    """Rebuild the nested lists of ``structure`` from the flat sequence ``flat``."""
    if structure is LEAF:
        item = flat[position[0]]
        position[0] += 1
        return item
    return [_unflatten(s, flat, position) for s in structure]


def _argument_names(f: Callable, count: int) -> list[str]:
    try:
        parameters = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names = [_clean(p.name) for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [f"argument {i} ({names[i]})" if i < len(names) else f"argument {i}" for i in range(count)]


# ---------------------------------------------------------------------------------------------
# Watching comparisons: only those made in the recording's own thread
# ---------------------------------------------------------------------------------------------

# thread id -> the comparison lists of the recordings running in that thread (nested ones too)
_recording: dict[int, list[list]] = {}
_install_lock = threading.Lock()


def _observe(left, right, symbol, result) -> None:
    """The comparison observer replay installs (once, and never removes, so that no other
    thread iterating the kernel's observer list meets it changing)."""
    lists = _recording.get(threading.get_ident())
    if lists:
        comparison = (left, right, symbol, result)
        for comparisons in lists:
            comparisons.append(comparison)


def _start_watching() -> list:
    with _install_lock:
        if _observe not in comparison_observers:
            comparison_observers.append(_observe)
    comparisons: list = []
    _recording.setdefault(threading.get_ident(), []).append(comparisons)
    return comparisons


def _stop_watching(comparisons: list) -> None:
    ident = threading.get_ident()
    lists = _recording.get(ident, [])
    for i, item in enumerate(lists):
        if item is comparisons:
            del lists[i]
            break
    if not lists:
        _recording.pop(ident, None)


# ---------------------------------------------------------------------------------------------
# The recorded program
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One interior node: ``slot = spec(*inputs, **params)``; inputs and slot index the program's values."""

    slot: int
    spec: Any
    params: dict | None
    inputs: tuple


@dataclass(frozen=True)
class Guard:
    """A comparison made while recording: ``left symbol right`` was ``result``."""

    left: int  # a slot
    symbol: str
    right: Any  # a slot (int) when right_is_slot, else the number compared with
    right_is_slot: bool
    result: bool

    def position(self) -> int:
        return max(self.left, self.right) if self.right_is_slot else self.left


def record(f: Callable, *example_args) -> Tape:
    """Run ``f(*example_args)`` once on Values and return its graph as a replayable ``Tape``.

    ``example_args`` are numbers, Values, or nested lists / tuples / numpy arrays of them;
    each number becomes an input of the tape. ``f`` returns a Value (or a nested list /
    tuple of Values and numbers: the first Value is the one ``backward`` differentiates).
    """
    if not callable(f):
        raise TypeError(f"record(f, *args): f must be a function, got {shorten(f)}")
    where = _argument_names(f, len(example_args))
    leaves: list = []
    structures = tuple(_structure_and_leaves(arg, where[i], leaves) for i, arg in enumerate(example_args))
    inputs = [leaf if isinstance(leaf, Value) else Value(leaf) for leaf in leaves]
    seen: dict[Value, int] = {}
    for i, leaf in enumerate(inputs):
        if leaf in seen:
            raise ReplayArgumentError(
                f"record: the same Value {shorten(leaf)} is passed twice as an argument; replay gives every "
                f"argument its own number, so pass it once"
            )
        if not leaf.is_leaf:
            raise ReplayArgumentError(
                f"record: argument Value {shorten(leaf)} is the result of an op"
                f"{f' ({leaf.op_spec.name})' if leaf.op_spec is not None else ''}; an "
                f"argument must be a leaf (a number or a Value made with Value(...))"
            )
        seen[leaf] = i
    position = [0]
    call_args = [_unflatten(s, inputs, position) for s in structures]  # f sees Values where numbers were
    comparisons = _start_watching()
    try:
        output = f(*call_args)
    finally:
        _stop_watching(comparisons)
    return Tape(f, structures, inputs, output, comparisons)


def record_batch(f: Callable, *example_args, lift: bool = False) -> BatchedTape:
    """``record(f, *example_args).batched(lift=lift)``: ``f`` computes one example's loss; the
    batched tape runs it on a whole batch at once (each argument gains a leading batch axis).
    With ``lift=True`` the graph's weighted sums run as matrix products (``minigrad_replay.lifting``)."""
    return record(f, *example_args).batched(lift=lift)


class Recorder:
    """``f``, replayed: recorded on its first call, and recorded again whenever the graph no
    longer fits (a ``GraphChangedError``), e.g. when a comparison in ``f`` turns out otherwise.

        step = Recorder(loss_fn)
        loss = step.backward(X, y)    # like tape.backward; ``step.recordings`` counts recordings

    Useful when ``f``'s control flow changes now and then; if it changes at every call,
    running ``f`` on Values is faster than recording it again and again. This is the
    ``replay`` engine (``minigrad demo --engine replay``).
    """

    def __init__(self, f: Callable):
        if not callable(f):
            raise TypeError(f"Recorder(f): f must be a function, got {shorten(f)}")
        self.function = f
        self.tape: Tape | None = None
        self.recordings = 0

    def forward(self, *args):
        """``f(*args)``'s outputs as numbers (recording again if the graph changed)."""
        return self._call("forward", args)

    def backward(self, *args):
        """Forward and backward: ``f``'s outputs, with the parameters' ``.grad`` filled in."""
        return self._call("backward", args)

    def value_and_grad(self, *args):
        """``(outputs, gradients with respect to each argument)``, as ``Tape.value_and_grad``."""
        return self._call("value_and_grad", args)

    __call__ = forward

    def _call(self, method: str, args):
        if self.tape is not None:
            try:
                return getattr(self.tape, method)(*args)
            except GraphChangedError:
                pass  # guards run before any gradient is written: nothing to undo
        self.tape = record(self.function, *args)
        self.recordings += 1
        return getattr(self.tape, method)(*args)

    def __repr__(self) -> str:
        return f"<Recorder of {_function_name(self.function)}: {self.recordings} recording(s)>"


# one replay at a time writes gradients (as the kernel runs one backward pass at a time)
_gradient_lock = threading.RLock()


def _grad_number(value: Value):
    """A leaf's gradient as backward() reads it before adding to it: None counts as 0.0 and
    a graph-building gradient (from create_graph=True) as its number."""
    grad = value.grad
    if type(grad) is float:
        return grad
    if grad is None:
        return 0.0
    if isinstance(grad, Value):
        return grad.data
    return grad


class Tape:
    """A recorded graph, replayed on floats by generated straight-line Python.

    - ``tape(*args)`` / ``tape.forward(*args)``: the outputs, as floats.
    - ``tape.backward(*args)``: forward and backward; adds the gradient of the loss (the
      first Value ``f`` returned) to ``.grad`` of every leaf that is not an argument (the
      parameters, as ``loss.backward()`` does) and of arguments given as Values.
    - ``tape.value_and_grad(*args)``: the outputs and the gradient for each argument.
    - ``tape.source``: the generated Python; ``tape.signature``: the graph's structure;
      ``tape.verify(*args)``: trace ``f`` again and check that the tape still fits it.
    """

    def __init__(self, function, structures, inputs, output, comparisons):
        self.function = function
        self.name = _function_name(function)
        self.structures = structures
        self.arg_names = _argument_names(function, len(structures))
        self.n_inputs = len(inputs)
        output_leaves: list = []
        self.output_structure = _output_structure(output, output_leaves, self.name)
        value_outputs = [o for o in output_leaves if isinstance(o, Value)]
        compared = [v for left, right, _, _ in comparisons for v in (left, right) if isinstance(v, Value)]
        # The kernel's own order. The loss is the first root, so its ancestors come in the
        # order topological_order(loss) gives, and replay adds up gradients as backward() does.
        nodes = topological_order(*(value_outputs + compared))

        slots: dict[Value, int] = {leaf: i for i, leaf in enumerate(inputs)}
        self.params: list[Value] = []  # every other leaf, read from .data at each replay
        constants: set[int] = set()  # params that are nodes without inputs or rule: never given a grad
        for n in nodes:
            if n in slots:
                continue
            if n.is_leaf or _is_constant_node(n):
                if not n.is_leaf:
                    constants.add(len(self.params))
                slots[n] = self.n_inputs + len(self.params)
                self.params.append(n)
        self.first_interior = self.n_inputs + len(self.params)
        self.instructions: list[Instruction] = []
        self._plain_forward: dict[int, bool] = {}  # id(spec) -> its forward rule returns a float
        for n in nodes:
            if n in slots:
                continue
            spec = _spec_of(n)
            slots[n] = self.first_interior + len(self.instructions)
            params = n.op_params or None
            instr = Instruction(slots[n], spec, params, tuple(slots[c] for c in n._prev))
            self.instructions.append(instr)
            if id(spec) not in self._plain_forward:
                self._plain_forward[id(spec)] = _returns_float(spec, [c.data for c in n._prev], params)
        self.n_slots = self.first_interior + len(self.instructions)
        # per output: (True, its slot) for a Value, (False, the number) for a number f returned as is
        self.outputs: list[tuple[bool, int | float]] = [
            (True, slots[o]) if isinstance(o, Value) else (False, float(o)) for o in output_leaves
        ]
        self.loss: int | None = next((cast(int, slot) for is_slot, slot in self.outputs if is_slot), None)
        self.guards = [
            Guard(
                slots[left],
                symbol,
                slots[right] if isinstance(right, Value) else float(right),
                isinstance(right, Value),
                bool(result),
            )
            for left, right, symbol, result in comparisons
        ]
        # where each guard is checked: after the last node it reads (the leaves: before any node)
        self.guards_at: dict[int, list[int]] = {}
        for index, guard in enumerate(self.guards):
            self.guards_at.setdefault(max(guard.position(), self.first_interior - 1), []).append(index)
        self.recorded_outputs = [o.data if isinstance(o, Value) else float(o) for o in output_leaves]
        self._needs_grad = self._loss_ancestry()
        # the parameters whose .grad backward writes: leaves the loss depends on
        self._grad_params = [
            i for i in range(len(self.params)) if i not in constants and self._needs_grad[self.n_inputs + i]
        ]
        self._forward_only: Callable[..., Any] | None = None
        self._forward_backward: Callable[..., Any] | None = None
        # The straight-line Python is written on first use: a lifted or batched run of a big
        # graph (a whole data set's loss) may never need it, and writing it costs time.
        self._source: str | None = None

    @property
    def source(self) -> str:
        """The generated Python: forward and backward (forward only when ``f`` returned no Value)."""
        if self._source is None:
            self._source = self._generate(with_backward=self.loss is not None)
        return self._source

    # -- structure ------------------------------------------------------------------------------
    def _loss_ancestry(self) -> list[bool]:
        """Which slots the loss depends on: only those take part in the backward pass."""
        needed = [False] * self.n_slots
        if self.loss is None:
            return needed
        needed[self.loss] = True
        for instr in reversed(self.instructions):
            if needed[instr.slot]:
                for i in instr.inputs:
                    needed[i] = True
        return needed

    @property
    def signature(self) -> tuple:
        """The graph's structure: two tapes with equal signatures compute the same function of
        their inputs and parameters (possibly different parameter Values)."""
        return (
            self.structures,
            len(self.params),
            tuple(
                (i.spec.name, i.spec.plugin, tuple(sorted((i.params or {}).items())), i.inputs)
                for i in self.instructions
            ),
            tuple((g.left, g.symbol, g.right, g.right_is_slot, g.result) for g in self.guards),
            tuple(self.outputs),
            self.output_structure,
        )

    def matches(self, other: Tape) -> bool:
        """Whether ``other`` (e.g. a fresh recording) has this tape's structure."""
        return self.signature == other.signature

    def verify(self, *args, rel_tol: float = 1e-9) -> bool:
        """Trace ``f`` again on ``args`` and check the tape still fits: the same graph, and the
        same outputs as the fresh run on Values. Raises ``GraphChangedError`` saying what
        differs; returns True otherwise. (A tape reads the parameter Values it was recorded
        with: after building a new model, record again.)"""
        fresh = record(self.function, *args)
        difference = _first_difference(self, fresh)
        if difference:
            raise GraphChangedError(
                f"replay of {self.name}: the graph has changed since it was recorded: {difference}. "
                f"Record it again: record({self.name}, *args)"
            )
        replayed = self._flat_outputs(self._run(args, backward=False)[0])
        for i, (mine, eager) in enumerate(zip(replayed, fresh.recorded_outputs)):
            if not (
                mine == eager
                or math.isclose(mine, eager, rel_tol=rel_tol, abs_tol=1e-12)
                or (math.isnan(mine) and math.isnan(eager))
            ):
                raise GraphChangedError(
                    f"replay of {self.name}: output {i} is {shorten(mine)} on replay but {shorten(eager)} when "
                    f"run on Values. {self.name} reads a number the graph does not show (e.g. Value(x.data) or "
                    f"a global that changed): it cannot be replayed; run it on Values"
                )
        return True

    def __repr__(self) -> str:
        return (
            f"<Tape of {self.name}: {self.n_inputs} inputs, {len(self.params)} parameters, "
            f"{len(self.instructions)} nodes, {len(self.guards)} guards>"
        )

    # -- running -------------------------------------------------------------------------------
    def __call__(self, *args):
        return self.forward(*args)

    def forward(self, *args):
        """The outputs of ``f`` on ``args``, computed from the recorded graph."""
        return self._run(args, backward=False)[0]

    def backward(self, *args):
        """Forward and backward on ``args``: adds d loss / d leaf to the ``.grad`` of each parameter
        (and of each argument given as a Value), like ``loss.backward()``; returns the outputs."""
        outputs, arg_grads, value_args = self._run(args, backward=True)
        for index, value in value_args:
            _add_grad(value, arg_grads[index])
        return outputs

    def value_and_grad(self, *args):
        """``(outputs, grads)``: ``grads`` has one entry per argument, shaped like it, holding
        d loss / d argument. The parameters' ``.grad`` are filled in as by ``backward``."""
        outputs, arg_grads, value_args = self._run(args, backward=True)
        for index, value in value_args:
            _add_grad(value, arg_grads[index])
        position = [0]
        grads = tuple(_unflatten(s, arg_grads, position) for s in self.structures)
        return outputs, grads

    def _flat_args(self, args) -> tuple[list, list]:
        if len(args) != len(self.structures):
            names = ", ".join(self.arg_names) or "no arguments"
            raise ReplayArgumentError(
                f"replay of {self.name}: recorded with {len(self.structures)} argument(s) ({names}), got {len(args)}"
            )
        flat: list = []
        value_args: list = []
        for arg, structure, where in zip(args, self.structures, self.arg_names):
            _flatten_like(arg, structure, f"replay of {self.name}: {where}", flat, value_args)
        return flat, value_args

    def _run(self, args, backward: bool):
        flat, value_args = self._flat_args(args)
        if backward and self.loss is None:
            raise TypeError(
                f"replay of {self.name}: {self.name} returned no Value, so there is nothing to differentiate"
            )
        if not backward:
            try:
                outputs = self._forward_function()(flat, self.params)
            except GraphChangedError:
                raise
            except Exception:
                # The generated code runs the op rules without the kernel's checks; the kernel's
                # way of running them decides: the exact result, or the error that names the op.
                outputs = self._interpret(flat, None)[0]
            return self._shape_outputs(outputs), None, None
        with _gradient_lock:
            params = self.params
            starts = [_grad_number(params[i]) for i in self._grad_params]
            try:
                outputs, arg_grads, param_grads = self._forward_backward_function()(flat, params, starts)
            except GraphChangedError:
                raise
            except Exception:
                outputs, arg_grads, param_grads = self._interpret(flat, starts)
            for i, grad in zip(self._grad_params, param_grads):
                params[i].grad = grad
        return self._shape_outputs(outputs), arg_grads, value_args

    def _generate(self, with_backward: bool) -> str:
        code = _ScalarCode(self)
        source = code.source(with_backward)
        namespace = {"_changed": self._changed, **code.globals}
        label = f"<replay of {self.name}{'' if with_backward else ', forward'}>"
        function = _compile(self, source, label, namespace)
        if with_backward:
            self._forward_backward = function["forward_backward"]
        else:
            self._forward_only = function["forward"]
        return source

    def _forward_function(self) -> Callable[..., Any]:
        if self._forward_only is None:
            self._generate(with_backward=False)
        assert self._forward_only is not None  # _generate compiled it
        return self._forward_only

    def _forward_backward_function(self) -> Callable[..., Any]:
        if self._forward_backward is None:
            self._generate(with_backward=True)
        assert self._forward_backward is not None  # _generate compiled it
        return self._forward_backward

    def _shape_outputs(self, flat_outputs):
        flat = [float(x) for x in flat_outputs]
        if self.output_structure is LEAF:
            return flat[0]
        return _unflatten_output(self.output_structure, flat, [0])

    def _flat_outputs(self, shaped) -> list:
        flat: list = []
        _collect_output(shaped, flat)
        return flat

    def _changed(self, index: int, left, right) -> GraphChangedError:
        guard = self.guards[index]
        now = not guard.result
        return GraphChangedError(
            f"replay of {self.name}: the comparison {self._describe_slot(guard.left)} {guard.symbol} "
            f"{self._describe_slot(guard.right) if guard.right_is_slot else shorten(guard.right)} was "
            f"{guard.result} when the graph was recorded but is {now} now "
            f"({shorten(left)} {guard.symbol} {shorten(right)}): Python would take another branch, so the "
            f"recorded graph no longer fits. Record it again: record({self.name}, *args)"
        )

    def _describe_slot(self, slot: int) -> str:
        if slot < self.n_inputs:
            return f"input x{slot}"
        if slot < self.first_interior:
            param = self.params[slot - self.n_inputs]
            return f"parameter {shorten(param.label)}" if param.label else f"parameter p{slot - self.n_inputs}"
        instr = self.instructions[slot - self.first_interior]
        return f"the {instr.spec.name} node v{slot - self.first_interior}"

    # -- the reference: the kernel's way, one node at a time ----------------------------------------
    def _interpret(self, flat_args: list, starts: list | None):
        """Forward (and, given the parameters' starting gradients, backward) as the kernel runs
        them: ``evaluate`` for each node, ``local_derivatives`` and ``+=`` in backward()'s order."""
        values = list(flat_args) + [p.data for p in self.params] + [0.0] * len(self.instructions)
        guards_at = self.guards_at
        self._check_guards(guards_at.get(self.first_interior - 1, ()), values)
        for instr in self.instructions:
            values[instr.slot] = evaluate(instr.spec, [values[i] for i in instr.inputs], instr.params)
            self._check_guards(guards_at.get(instr.slot, ()), values)
        outputs = [values[cast(int, slot)] if is_slot else slot for is_slot, slot in self.outputs]
        if starts is None:
            return outputs, None, None
        loss = self.loss
        assert loss is not None  # _run refuses a backward pass without a loss
        grads: list = [0.0] * self.n_slots
        for i, start in zip(self._grad_params, starts):
            grads[self.n_inputs + i] = start
        if loss >= self.first_interior:
            grads[loss] = 1.0
        else:
            grads[loss] = grads[loss] + 1.0  # a leaf as the root: backward() adds to it
        for instr in reversed(self.instructions):
            if not self._needs_grad[instr.slot] or not instr.inputs:
                continue
            upstream, out = grads[instr.slot], values[instr.slot]
            if upstream == 0.0 and out - out == 0.0:
                continue  # backward() skips a node whose gradient is 0 (and whose value is finite)
            partials = local_derivatives(instr.spec, [values[i] for i in instr.inputs], out, instr.params)
            for i, partial in zip(instr.inputs, partials):
                try:
                    grads[i] += partial * upstream
                except TypeError as error:
                    raise bad_partial_error(instr.spec, partials) from error
        param_grads = [grads[self.n_inputs + i] for i in self._grad_params]
        return outputs, grads[: self.n_inputs], param_grads

    def _check_guards(self, indices, values) -> None:
        for index in indices:
            guard = self.guards[index]
            left = values[guard.left]
            right = values[guard.right] if guard.right_is_slot else guard.right
            if COMPARE[guard.symbol](left, right) != guard.result:
                raise self._changed(index, left, right)

    # -- batches -------------------------------------------------------------------------------
    def batched(self, lift: bool = False) -> BatchedTape:
        """This graph evaluated for a whole batch at once with numpy (see ``BatchedTape``);
        ``lift=True``: weighted sums over the same inputs as matrix products, and each op's
        nodes of one level as one array operation (see ``minigrad_replay.lifting``)."""
        return BatchedTape(self, lift=lift)


def _spec_of(n: Value):
    """The registered op that made an interior node; replay needs its rules."""
    spec = n.op_spec
    if spec is not None:
        return spec
    if n.has_closure:
        raise MissingRuleError(
            f"record: the node {shorten(n)} passes its gradient on with a _backward "
            f"closure set by hand; replay needs an op's rules (forward and derivative) to compute a node "
            f"again. Build it with a registered op (minigrad_core.register_op / @op), or run it on Values"
        )
    raise MissingRuleError(
        f"record: the node {shorten(n)} was made by hand, Value(..., _op=...), from {len(n._prev)} "
        f"input(s), and no registered op of that name and arity gives the rules to compute it again. "
        f"Register an OpSpec (minigrad_core.register_op / @op), or run it on Values"
    )


def _is_constant_node(n: Value) -> bool:
    """A node made by hand with no inputs and no rule (``Value(2.0, (), "const")``): replay
    reads its number, as for a leaf."""
    return not n.is_leaf and n.op_spec is None and not n.has_closure and not n._prev


def _returns_float(spec, inputs: list, params) -> bool:
    """Whether the op's forward rule gives a float on the recorded inputs: then generated
    code may call it directly; otherwise it goes through the kernel's ``evaluate``, which
    turns what it gives into a float (or refuses it) as eager does."""
    try:
        result = spec.forward(*inputs, **params) if params else spec.forward(*inputs)
    except Exception:
        return False
    return type(result) is float


_data_of = operator.attrgetter("data")


def _add_grads(values: list, grads) -> None:
    for value, grad in zip(values, grads):
        current = value.grad
        if type(current) is float:
            value.grad = current + grad
        else:
            _add_grad(value, grad)


def _add_grad(value: Value, grad) -> None:
    value.grad = _grad_number(value) + grad


def _output_structure(output, leaves: list, name: str):
    if isinstance(output, (Value, numbers.Real)):
        leaves.append(output)
        return LEAF
    if isinstance(output, (list, tuple)):
        return (type(output), tuple(_output_structure(o, leaves, name) for o in output))
    raise TypeError(
        f"record: {name} returned {shorten(output)} of type {type(output).__name__}; it must return a Value "
        f"(or a list / tuple of Values and numbers)"
    )


def _unflatten_output(structure, flat: list, position: list):
    if structure is LEAF:
        item = flat[position[0]]
        position[0] += 1
        return item
    kind, items = structure
    return kind(_unflatten_output(s, flat, position) for s in items)


def _collect_output(shaped, flat: list) -> None:
    if isinstance(shaped, (list, tuple)):
        for item in shaped:
            _collect_output(item, flat)
    else:
        flat.append(shaped)


def _first_difference(recorded: Tape, fresh: Tape) -> str:
    if recorded.structures != fresh.structures:
        return "its arguments have another shape"
    if len(recorded.params) != len(fresh.params):
        return f"it reads {len(fresh.params)} leaves besides its arguments, not {len(recorded.params)}"
    for i, (a, b) in enumerate(zip(recorded.instructions, fresh.instructions)):
        if a.spec.name != b.spec.name or a.params != b.params or a.inputs != b.inputs:
            return (
                f"node v{i} was {a.spec.name}{_params_text(a.params)} of {shorten(a.inputs)} and is now "
                f"{b.spec.name}{_params_text(b.params)} of {shorten(b.inputs)}"
            )
    if len(recorded.instructions) != len(fresh.instructions):
        return f"it has {len(fresh.instructions)} nodes, not {len(recorded.instructions)}"
    if [(g.left, g.symbol, g.right, g.result) for g in recorded.guards] != [
        (g.left, g.symbol, g.right, g.result) for g in fresh.guards
    ]:
        return "its comparisons (Python control flow) differ"
    if recorded.outputs != fresh.outputs:
        return "it returns other outputs"
    if recorded.output_structure != fresh.output_structure:
        return "its output has another shape"
    return ""


def _params_text(params) -> str:
    return f"({', '.join(f'{k}={shorten(v)}' for k, v in params.items())})" if params else ""


def _compile(owner, source: str, filename: str, namespace: dict) -> dict:
    """Run ``source`` in ``namespace``. Its lines are registered with linecache, so tracebacks
    through generated code show them, until ``owner`` (the tape) is garbage."""
    filename = f"{filename[:-1]} #{next(_compile_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    weakref.finalize(owner, linecache.cache.pop, filename, None)
    exec(compile(source, filename, "exec"), namespace)
    return namespace


_compile_counter = itertools.count(1)


# ---------------------------------------------------------------------------------------------
# Code generation
# ---------------------------------------------------------------------------------------------

# Python's compiler slows down sharply with tens of thousands of local names: the partials
# of a node with more inputs than this stay in one tuple, read by index.
_UNPACKED_PARTIALS = 3
_TERMS_PER_LINE = 64  # long sums are split over lines (the compiler nests a + b + ... deeply)


def _sum_lines(target: str, first: str, terms: list[str]) -> list[str]:
    """``target = first + t1 + t2 + ...``, continued as ``target = target + ...``: the same
    left-to-right order of additions as ``target = first`` then ``target += t`` for each term."""
    head = terms[:_TERMS_PER_LINE]
    lines = [f"{target} = {' + '.join([first, *head]) if first else ' + '.join(head)}"]
    for start in range(_TERMS_PER_LINE, len(terms), _TERMS_PER_LINE):
        lines.append(f"{target} = {target} + {' + '.join(terms[start : start + _TERMS_PER_LINE])}")
    return lines


def _tuple_source(names: list[str]) -> str:
    if not names:
        return "()"
    return f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"


def _unpack_source(names: list[str]) -> str:
    return ", ".join(names) + ("," if len(names) == 1 else "")


class _CodeWriter:
    """What both code generators share: a variable name per slot (x inputs, p other leaves,
    v nodes) and ``globals``, the objects the generated code uses, each under one name.

    Nothing the user controls is pasted into the source: variable names are made here, the
    global names from op names (identifiers, checked again), numbers appear as their repr
    only when they are plain finite floats or small ints, and everything else (parameter
    values, dicts, functions) is a global."""

    def __init__(self, tape: Tape):
        self.tape = tape
        self.globals: dict = {}
        self._global_names: dict[tuple, str] = {}
        self.names = [f"x{i}" for i in range(tape.n_inputs)]
        self.names += [f"p{i}" for i in range(len(tape.params))]
        self.names += [f"v{i}" for i in range(len(tape.instructions))]

    def _new_global(self, base: str, value) -> str:
        base = _identifier(base)
        name, n = base, 2
        while name in self.globals:
            name, n = f"{base}_{n}", n + 1
        self.globals[name] = value
        return name

    def _global(self, role: str, spec, make: Callable[[], Any]) -> str:
        """The global name of an op's object for ``role`` (unique even if two ops share a name)."""
        key = (role, id(spec))
        if key not in self._global_names:
            self._global_names[key] = self._new_global(f"{role}_{spec.name}", make())
        return self._global_names[key]

    def _spec_global(self, spec) -> str:
        """The global name of an op's spec (what the kernel's evaluate and partials take)."""
        return self._global("spec", spec, lambda: spec)

    def _literal(self, value) -> str:
        """Source text for a number: its repr when that is a plain literal, else a global."""
        if (type(value) is float and math.isfinite(value)) or (type(value) is int and abs(value) < 2**63):
            text = repr(value)
            return f"({text})" if value < 0 else text
        return self._new_global("const", value)

    def _params(self, params) -> str:
        """A global holding a node's parameters (``None`` when it has none)."""
        if not params:
            return "None"
        key = ("params", _params_key(params))
        if key not in self._global_names:
            self._global_names[key] = self._new_global("params", dict(params))
        return self._global_names[key]

    def _keywords(self, params) -> list[str]:
        """Keyword arguments passing ``params`` to a rule (names checked to be identifiers)."""
        if not params:
            return []
        if all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) for k in params):
            return [f"{k}={self._literal(v)}" for k, v in params.items()]
        return [f"**{self._params(params)}"]

    def _zeros(self, count: int) -> str:
        """A global holding ``count`` zeros: the partials of a node that passes nothing on."""
        key = ("zeros", count)
        if key not in self._global_names:
            self._global_names[key] = self._new_global(f"zeros{count}", (0.0,) * count)
        return self._global_names[key]

    def _prologue(self) -> tuple[list[str], dict[int, list[int]]]:
        """The lines that unpack the inputs and the other leaves (and check the guards on
        them), and after which node each other guard is checked."""
        tape, names = self.tape, self.names
        body = []
        if tape.n_inputs:
            body.append(f"{_unpack_source(names[: tape.n_inputs])} = inputs")
        if tape.params:
            body.append(f"{_unpack_source(names[tape.n_inputs : tape.first_interior])} = [p.data for p in parameters]")
        body += self._guard_lines(tape.guards_at.get(tape.first_interior - 1, ()))
        return body, tape.guards_at

    def _guard_lines(self, indices) -> list[str]:
        raise NotImplementedError


def _params_key(params: dict) -> tuple[Any, ...]:
    try:
        key = tuple(sorted(params.items()))
        hash(key)
        return key
    except TypeError:
        return ("id", id(params))


class _ScalarCode(_CodeWriter):
    """Writes the straight-line Python for one tape."""

    def inputs_source(self, instr: Instruction) -> str:
        """The node's inputs as a tuple: written out, or (many inputs) the tuple its forward line made."""
        if len(instr.inputs) > _UNPACKED_PARTIALS:
            return f"a{instr.slot - self.tape.first_interior}"
        return _tuple_source([self.names[i] for i in instr.inputs])

    def forward_lines(self, instr: Instruction) -> list[str]:
        spec, target = instr.spec, self.names[instr.slot]
        inputs = [self.names[i] for i in instr.inputs]
        lines = []
        if len(inputs) > _UNPACKED_PARTIALS:  # a fused op: its inputs are listed once, for both passes
            lines.append(f"{self.inputs_source(instr)} = {_tuple_source(inputs)}")
            inputs = [f"*{self.inputs_source(instr)}"]
        if self.tape._plain_forward[id(spec)]:
            rule = self._global("forward", spec, lambda: spec.forward)
            lines.append(f"{target} = {rule}({', '.join(inputs + self._keywords(instr.params))})")
            return lines
        # a forward rule that gives something other than a float: the kernel's evaluate turns it
        # into one (or refuses it), as eager does
        self.globals.setdefault("evaluate", evaluate)
        spec_name = self._spec_global(spec)
        lines.append(f"{target} = evaluate({spec_name}, {self.inputs_source(instr)}, {self._params(instr.params)})")
        return lines

    def backward(self) -> list[str]:
        """The chain rule gathered per node: node.grad = sum over its users of partial * user.grad.

        Users come before inputs (reverse topological order), so when a node's line runs
        every term of its sum is known; the terms are added in the order the kernel's
        ``child.grad += partial * node.grad`` adds them, starting from what the kernel starts
        from (0.0, or a parameter's gradient so far), so the sums round alike. A node whose
        gradient is 0 and whose value is finite passes nothing on (as in backward()): its
        partials are not computed and count as zeros.
        """
        tape, names = self.tape, self.names
        self.globals["partials"] = local_derivatives
        terms: dict[int, list[str]] = {}
        loss = tape.loss
        assert loss is not None  # backward code is written only for a tape with a loss
        lines = []
        if loss >= tape.first_interior:
            lines.append(f"g_{names[loss]} = 1.0")
        else:
            terms[loss] = ["1.0"]  # a leaf returned as the loss: backward() adds the seed to its grad
        for instr in reversed(tape.instructions):
            if not tape._needs_grad[instr.slot]:
                continue
            node = names[instr.slot]
            if instr.slot != loss:
                lines += _sum_lines(f"g_{node}", "0.0", terms.pop(instr.slot))
            if not instr.inputs:
                continue  # an op without inputs passes nothing on
            index = instr.slot - tape.first_interior
            spec_name = self._spec_global(instr.spec)
            call = f"partials({spec_name}, {self.inputs_source(instr)}, {node}, {self._params(instr.params)})"
            if instr.slot != loss:
                call += f" if g_{node} != 0.0 or {node} - {node} != 0.0 else {self._zeros(len(instr.inputs))}"
            if len(instr.inputs) <= _UNPACKED_PARTIALS:
                partials = [f"d{index}_{i}" for i in range(len(instr.inputs))]
                lines.append(f"{_unpack_source(partials)} = {call}")
            else:  # many inputs (a fused op): one tuple, so the function keeps few local names
                partials = [f"d{index}[{i}]" for i in range(len(instr.inputs))]
                lines.append(f"d{index} = {call}")
            for slot, partial in zip(instr.inputs, partials):
                terms.setdefault(slot, []).append(f"{partial} * g_{node}")
        for slot in range(tape.n_inputs):  # the arguments: from 0.0, as a fresh Value's grad
            if slot in terms:
                lines += _sum_lines(f"g_{names[slot]}", "0.0", terms.pop(slot))
        for index in tape._grad_params:  # the parameters: from their gradient so far
            slot = tape.n_inputs + index
            lines += _sum_lines(f"g_{names[slot]}", f"s_{names[slot]}", terms.pop(slot))
        return lines

    def source(self, with_backward: bool) -> str:
        tape, names = self.tape, self.names
        function = "forward_backward(inputs, parameters, grads)" if with_backward else "forward(inputs, parameters)"
        lines = [
            f"# Replay of {tape.name}: {tape.n_inputs} input(s) x; {len(tape.params)} other leaves p "
            f"(parameters and constants, read from their .data at each call); {len(tape.instructions)} node(s) v.",
            f"def {function}:",
        ]
        body, guards_at = self._prologue()
        body.append("# forward: one line per node, the op's own forward rule")
        for instr in tape.instructions:
            body += self.forward_lines(instr)
            body += self._guard_lines(guards_at.get(instr.slot, ()))
        outputs = [names[cast(int, slot)] if is_slot else self._literal(slot) for is_slot, slot in tape.outputs]
        outputs_source = _tuple_source(outputs)
        if with_backward:
            grad_params = [names[tape.n_inputs + i] for i in tape._grad_params]
            if grad_params:
                starts = _unpack_source([f"s_{p}" for p in grad_params])
                body.append(f"{starts} = grads  # the parameters' grads so far")
            body.append("# backward: each node's grad is the sum over its users of (d user / d node) * user.grad")
            body += self.backward()
            input_grads = [f"g_{names[s]}" if tape._needs_grad[s] else "0.0" for s in range(tape.n_inputs)]
            param_grads = [f"g_{p}" for p in grad_params]
            body.append(f"return {outputs_source}, [{', '.join(input_grads)}], {_tuple_source(param_grads)}")
        else:
            body.append(f"return {outputs_source}")
        return "\n".join(lines + ["    " + line for line in body]) + "\n"

    def _guard_lines(self, indices) -> list[str]:
        lines = []
        for index in indices:
            guard = self.tape.guards[index]
            left = self.names[guard.left]
            right = self.names[guard.right] if guard.right_is_slot else self._literal(guard.right)
            test = f"{left} {guard.symbol} {right}"
            condition = f"not ({test})" if guard.result else test
            lines.append(
                f"if {condition}: raise _changed({index}, {left}, {right})  # recorded: {test} was {guard.result}"
            )
        return lines


# ---------------------------------------------------------------------------------------------
# Ops on arrays: their numpy forms or rules when those work, else the rules example by example
# ---------------------------------------------------------------------------------------------


class _NotAColumn(Exception):
    """A rule run on arrays gave something that is not one number per example."""


def _batch_size(arrays) -> int | None:
    size = None
    for x in arrays:
        if type(x) is np.ndarray and x.ndim:
            size = x.shape[0] if size is None else max(size, x.shape[0])
    return size


def _as_column(result, size: int):
    """A forward rule's result on arrays: an array of one float per example."""
    if type(result) is np.ndarray:
        if result.shape == (size,) and result.dtype.kind in "fiub":
            return result if result.dtype == np.float64 else result.astype(float)
        if result.shape == () and result.dtype.kind in "fiub":
            return np.full(size, float(result))
        raise _NotAColumn(f"an array of shape {result.shape} and dtype {result.dtype}, not {size} numbers")
    if isinstance(result, numbers.Real) and not isinstance(result, Value):
        return np.full(size, float(result))  # the same for every example
    raise _NotAColumn(f"{shorten(result)} of type {type(result).__name__}, not an array of {size} numbers")


def _as_partial(partial, size: int):
    """A partial derivative on arrays: one float per example, or one number for all of them."""
    if type(partial) is np.ndarray:
        if partial.shape == (size,) and partial.dtype.kind in "fiub":
            return partial if partial.dtype == np.float64 else partial.astype(float)
        if partial.shape == () and partial.dtype.kind in "fiub":
            return float(partial)
        raise _NotAColumn(f"a partial of shape {partial.shape} and dtype {partial.dtype}, not {size} numbers")
    if isinstance(partial, numbers.Real) and not isinstance(partial, Value):
        return partial
    raise _NotAColumn(f"a partial {shorten(partial)} of type {type(partial).__name__}")


def _columns(arrays, size: int) -> list[list]:
    return [x.tolist() if type(x) is np.ndarray and x.ndim else [float(x)] * size for x in arrays]


def _numpy_trouble(error: BaseException | None) -> bool:
    """Whether ``error`` is (or was caused by) numpy's FloatingPointError: a division by zero,
    an overflow or an invalid operation met on arrays, which the rules handle one number at a
    time (the kernel reports it as a domain error of the op)."""
    while error is not None:
        if isinstance(error, FloatingPointError):
            return True
        error = error.__cause__
    return False


def _agrees(array_result: float, scalar_result: float) -> bool:
    return (
        array_result == scalar_result
        or math.isclose(array_result, scalar_result, rel_tol=1e-9)
        or (math.isnan(array_result) and math.isnan(scalar_result))
    )


class _BatchRule:
    """One op evaluated on arrays of one value per example.

    Forward: ``np_forward`` if the op gives one, else its forward rule on the arrays.
    Derivative: ``np_derivative`` if given, else the kernel's ``local_derivatives`` on the
    arrays. Whether that works is decided at the first call on a batch of two or more: if it
    raises (a rule with a Python ``if`` cannot run on arrays), gives something of the wrong
    shape, or (a rule run on arrays) disagrees with the rule run on one example, the op is
    evaluated example by example from then on, and ``on_fallback`` is told once. Where numpy
    meets a division by zero, an overflow or an invalid operation, that call is evaluated
    example by example, so the rules give the numbers (inf, as eager) or the error naming
    the op. Shared values (no array among the inputs) go through the kernel's rules on numbers.
    """

    def __init__(self, spec, on_fallback: Callable[[Any, str, str], None]):
        self.spec = spec
        self.on_fallback = on_fallback
        # per role: None (undecided), "arrays" or "examples"
        self.mode: dict[str, str | None] = {"forward": None, "derivative": None}

    def forward(self, inputs: tuple, params):
        spec = self.spec
        size = _batch_size(inputs)
        if size is None:
            return evaluate(spec, inputs, params)
        if size == 1 or self.mode["forward"] == "examples":
            return self._forward_examples(inputs, params, size)
        try:
            with np.errstate(divide="raise", over="raise", invalid="raise"):
                if spec.np_forward is not None:
                    result = spec.np_forward(*inputs, **params) if params else spec.np_forward(*inputs)
                else:
                    result = spec.forward(*inputs, **params) if params else spec.forward(*inputs)
            result = _as_column(result, size)
            if self.mode["forward"] is None and spec.np_forward is None:
                columns = _columns(inputs, size)
                self._check_examples(
                    result, [0, size - 1], lambda i: evaluate(spec, [column[i] for column in columns], params)
                )
        except Exception as error:
            result = self._forward_examples(inputs, params, size)  # the rule's own error, if it has one
            if not _numpy_trouble(error):
                self._fall_back("forward", error)
            return result
        self.mode["forward"] = "arrays"
        return result

    def derivative(self, inputs: tuple, out, params):
        spec = self.spec
        size = _batch_size((*inputs, out))
        if size is None:
            return local_derivatives(spec, inputs, out, params)
        if size == 1 or self.mode["derivative"] == "examples":
            return self._derivative_examples(inputs, out, params, size)
        try:
            with np.errstate(divide="raise", over="raise", invalid="raise"):
                if spec.np_derivative is not None:
                    partials = (
                        spec.np_derivative(*inputs, out, **params) if params else spec.np_derivative(*inputs, out)
                    )
                    if not isinstance(partials, (tuple, list)) or len(partials) != len(inputs):
                        raise _NotAColumn(f"np_derivative returned {shorten(partials)}, not {len(inputs)} partials")
                else:
                    partials = local_derivatives(spec, inputs, out, params)
            partials = tuple(_as_partial(p, size) for p in partials)
            if self.mode["derivative"] is None and spec.np_derivative is None:
                columns, outs = _columns(inputs, size), _columns([out], size)[0]

                def partial_on_example(k: int) -> Callable[[int], float]:
                    return lambda i: float(
                        local_derivatives(spec, [column[i] for column in columns], outs[i], params)[k]
                    )

                for k, partial in enumerate(partials):
                    if type(partial) is np.ndarray:
                        self._check_examples(partial, [0, size - 1], partial_on_example(k))
        except Exception as error:
            partials = self._derivative_examples(inputs, out, params, size)
            if not _numpy_trouble(error):
                self._fall_back("derivative", error)
            return partials
        self.mode["derivative"] = "arrays"
        return partials

    def _check_examples(self, result, indices, scalar: Callable[[int], float]) -> None:
        for i in indices:
            expected = scalar(i)
            if not _agrees(float(result[i]), expected):
                raise _NotAColumn(
                    f"on arrays it gives {float(result[i])!r} for example {i}, where the rule on "
                    f"that example gives {expected!r}"
                )

    def _fall_back(self, role: str, error: Exception) -> None:
        if self.mode[role] != "examples":
            self.mode[role] = "examples"
            reason = str(error) if isinstance(error, _NotAColumn) else f"{type(error).__name__}: {error}"
            self.on_fallback(self.spec, role, shorten(reason))

    def _forward_examples(self, inputs, params, size: int):
        spec = self.spec
        return np.array([evaluate(spec, example, params) for example in zip(*_columns(inputs, size))], dtype=float)

    def _derivative_examples(self, inputs, out, params, size: int):
        spec = self.spec
        outs = _columns([out], size)[0]
        rows = [local_derivatives(spec, example, o, params) for example, o in zip(zip(*_columns(inputs, size)), outs)]
        try:
            return tuple(np.array(column, dtype=float) for column in zip(*rows))
        except (TypeError, ValueError) as error:
            bad = next(row for row in rows if not all(isinstance(p, numbers.Real) for p in row))
            raise bad_partial_error(spec, bad) from error


def _fallback_message(who: str, spec, role: str, reason: str) -> str:
    other = "np_forward" if role == "forward" else "np_derivative"
    return (
        f"{who}: op {spec.name!r} (plugin {spec.plugin!r}): its {role} rule does not run on numpy arrays "
        f"({reason}), so it is evaluated one example at a time, which is slow. Give its OpSpec {other} "
        f"to vectorize it."
    )


# ---------------------------------------------------------------------------------------------
# Batched replay with numpy: one example's graph, a whole batch at once
# ---------------------------------------------------------------------------------------------


def _total(partial, upstream) -> float:
    """Sum over the batch of partial * upstream: the gradient of a value shared by every example."""
    if type(partial) is np.ndarray and partial.ndim:
        return float(partial @ upstream)
    return float(partial * upstream.sum())


def _totals(partials, upstream) -> list:
    """``_total`` of several partials at once: those that are arrays (one value per example)
    go through one matrix-vector product."""
    is_row = [type(p) is np.ndarray and p.ndim == 1 for p in partials]
    rows = [p for p, row in zip(partials, is_row) if row]
    products = (np.array(rows) @ upstream).tolist() if rows else []
    if len(rows) == len(partials):
        return products
    upstream_sum = float(upstream.sum())
    products.reverse()
    return [products.pop() if row else float(p * upstream_sum) for p, row in zip(partials, is_row)]


class BatchedTape:
    """A tape's per-example graph evaluated for a whole batch with numpy.

    Each argument gains a leading batch axis: a tape recorded as ``f(x, y)`` with ``x`` a
    list of 2 numbers and ``y`` a number runs as ``batched.forward(X, Y)`` with ``X`` of shape
    (B, 2) and ``Y`` of shape (B,). Parameters stay scalars, shared by every example;
    ``backward(..., reduce="mean")`` differentiates the mean (or the sum) of the per-example
    loss and adds the parameters' gradients, summed over the batch, to their ``.grad``.
    ``fallback_ops`` names the ops found (so far) to need evaluating one example at a time.
    """

    def __init__(self, tape: Tape, lift: bool = False):
        self.tape = tape
        self.name = tape.name
        self.is_batch = _depends_on_inputs(tape)
        self._grad_values = [tape.params[i] for i in tape._grad_params]  # whose .grad backward adds to
        self._rules: dict[int, _BatchRule] = {}
        self._fallbacks: list = []  # (spec, role, reason) decided in the current run, to warn about
        for instr in tape.instructions:
            if id(instr.spec) not in self._rules:
                self._rules[id(instr.spec)] = _BatchRule(instr.spec, self._note_fallback)
        self.lifted: LiftedProgram | None = None
        if lift:
            try:
                layout = [
                    (arg, column)
                    for arg, structure in enumerate(tape.structures)
                    for column in range(int(np.prod(_shape_of(structure) or (), dtype=int)))
                ]
                self.lifted = LiftedProgram(
                    tape,
                    self.is_batch,
                    self._rules,
                    lambda spec: _BatchRule(spec, self._note_fallback),
                    whole_graph=False,
                    input_layout=layout if len(layout) == tape.n_inputs else None,
                )
            except CannotLift:
                pass  # runs as batched replay
            else:  # the lifted program keeps the parameters in its own order
                order = self.lifted.parameter_order
                self._lifted_params = [tape.params[i] for i in order]
                position = {index: k for k, index in enumerate(order)}
                self._lifted_grad_positions = np.array([position[i] for i in tape._grad_params], dtype=np.intp)
        self._source: str | None = None
        self._compiled: Callable[..., Any] | None = None

    @property
    def source(self) -> str:
        """The generated numpy code of batched replay (one line per node); written on first use,
        as a lifted tape may never need it."""
        if self._source is None:
            code = _BatchedCode(self)
            self._source = code.source()
            namespace = {"_total": _total, "_totals": _totals, "_changed": self._changed, "np": np}
            namespace.update(code.globals)
            compiled = _compile(self, self._source, f"<batched replay of {self.name}>", namespace)
            self._compiled = compiled["forward_backward"]
        return self._source

    def _forward_backward(self, *args):
        if self._compiled is None:
            self.source  # noqa: B018  (writes and compiles the code)
        assert self._compiled is not None  # the source property compiled it
        return self._compiled(*args)

    def __repr__(self) -> str:
        return f"<BatchedTape of {self.name}: {len(self.tape.instructions)} nodes per example>"

    @property
    def fallback_ops(self) -> list[str]:
        return sorted({rule.spec.name for rule in self._rules.values() if "examples" in rule.mode.values()})

    def _note_fallback(self, spec, role: str, reason: str) -> None:
        self._fallbacks.append((spec, role, reason))

    def _columns(self, args) -> tuple[list, int]:
        arrays, size = self._arrays(args)
        return self._columns_of(arrays, size), size

    @staticmethod
    def _columns_of(arrays, size: int) -> list:
        """Every input as an array of one value per example."""
        return [np.ascontiguousarray(array[:, j]) for array in arrays for j in range(array.shape[1])]

    def _arrays(self, args) -> tuple[list, int]:
        """Per argument, its numbers as an array of shape (batch, numbers per example), checked."""
        tape = self.tape
        if len(args) != len(tape.structures):
            raise ReplayArgumentError(
                f"batched replay of {self.name}: recorded with {len(tape.structures)} argument(s) "
                f"({', '.join(tape.arg_names)}), got {len(args)}"
            )
        columns, size = [], None
        for arg, structure, where in zip(args, tape.structures, tape.arg_names):
            try:
                array = np.asarray(arg.data if isinstance(arg, Value) else arg, dtype=float)
            except (TypeError, ValueError) as error:
                raise ReplayArgumentError(
                    f"batched replay of {self.name}: {where} is not an array of numbers ({shorten(arg)}): {error}"
                ) from None
            shape = _shape_of(structure)
            if shape is None:
                raise ReplayArgumentError(
                    f"batched replay of {self.name}: {where} was recorded as a ragged nested list; "
                    f"batched replay needs rectangular arguments"
                )
            if array.ndim == 0 or array.shape[1:] != shape:
                wanted = f"(batch, {', '.join(map(str, shape))})" if shape else "(batch,)"
                raise ReplayArgumentError(
                    f"batched replay of {self.name}: {where} must have shape {wanted} (one example of "
                    f"shape {shape} per row), got shape {array.shape}"
                )
            if array.shape[0] == 0:
                raise ReplayArgumentError(f"batched replay of {self.name}: the batch is empty ({where} has no rows)")
            if size is None:
                size = array.shape[0]
            elif array.shape[0] != size:
                raise ReplayArgumentError(
                    f"batched replay of {self.name}: {where} has {array.shape[0]} examples, the arguments "
                    f"before it {size}"
                )
            columns.append(array.reshape(size, -1))
        if size is None:
            raise ReplayArgumentError(
                f"batched replay of {self.name}: {self.name} takes no arguments, so there is no batch"
            )
        return columns, size

    def forward(self, *args):
        """Every output for every example: arrays of shape (batch,) (floats for outputs that
        do not depend on the example)."""
        outputs, _, _ = self._run(args, seed=None)
        return outputs[0] if self.tape.output_structure is LEAF else outputs

    def backward(self, *args, reduce: str = "mean") -> float:
        """Forward and backward for the whole batch; returns the mean (or sum) of the loss over
        the examples and adds its gradient to each parameter's ``.grad``."""
        return self._loss_and_grads(args, reduce, input_grads=False)[0]

    def value_and_grad(self, *args, reduce: str = "mean"):
        """``(loss, grads)``: the reduced loss, and per argument an array of d loss / d argument
        for every example (shaped like the argument). Parameters' ``.grad`` are filled in."""
        return self._loss_and_grads(args, reduce, input_grads=True)

    def _loss_and_grads(self, args, reduce: str, input_grads: bool):
        if reduce not in ("mean", "sum"):
            raise ValueError(f"batched replay of {self.name}: reduce must be 'mean' or 'sum', got {shorten(reduce)}")
        if self.tape.loss is None:
            raise TypeError(f"batched replay of {self.name}: {self.name} returned no Value to differentiate")
        outputs, arg_grads, size = self._run(args, seed=reduce, input_grads=input_grads)
        loss = outputs[next(i for i, (is_slot, _) in enumerate(self.tape.outputs) if is_slot)]
        loss = float(np.mean(loss) if reduce == "mean" else np.sum(loss)) if np.ndim(loss) else float(loss)
        if not input_grads:
            return loss, None
        grads, start = [], 0
        for structure in self.tape.structures[: len(args)]:
            width = int(np.prod(_shape_of(structure), dtype=int))
            block = [np.broadcast_to(arg_grads[start + j], (size,)) for j in range(width)]
            start += width
            grads.append(
                np.stack(block, axis=1).reshape((size, *_shape_of(structure)))
                if block
                else np.zeros((size, *_shape_of(structure)))
            )
        return loss, tuple(grads)

    def _run(self, args, seed, input_grads: bool = True):
        arrays, size = self._arrays(args)
        columns = None if self.lifted is not None else self._columns_of(arrays, size)
        tape = self.tape
        if seed is None:
            upstream = None
        else:
            assert tape.loss is not None  # _loss_and_grads gives a seed only to a tape with a loss
            scale = 1.0 / size if seed == "mean" else 1.0
            upstream = np.full(size, scale) if self.is_batch[tape.loss] else scale * size
        try:
            lifted = self._run_lifted(arrays, upstream, input_grads) if self.lifted is not None else None
            if lifted is None and columns is None:
                columns = self._columns_of(arrays, size)
            if lifted is None:
                outputs, arg_grads, param_grads = self._forward_backward(columns, tape.params, upstream, size)
            else:
                outputs, arg_grads, param_grads = lifted
        finally:
            self._warn_fallbacks()
        if seed is not None:
            with _gradient_lock:
                grads = param_grads.tolist() if type(param_grads) is np.ndarray else [float(g) for g in param_grads]
                _add_grads(self._grad_values, grads)
        return outputs, arg_grads, size

    def _run_lifted(self, arrays, upstream, input_grads: bool):
        """The lifted program's (outputs, argument grads, parameter grads), or None where it
        met what the ops' rules handle one number at a time (a domain error, inf or nan):
        batched replay then computes the step, with eager's numbers or error."""
        lifted = self.lifted
        assert lifted is not None  # _run calls this only for a lifted tape
        parameters = np.fromiter(map(_data_of, self._lifted_params), float, len(self._lifted_params))
        try:
            outputs, arg_grads, grads = lifted.run(arrays, parameters, upstream, self._changed_at, input_grads)
        except GraphChangedError:
            raise
        except Exception:
            return None
        if upstream is None:
            return outputs, None, None
        param_grads = grads[self._lifted_grad_positions]
        if not (
            np.isfinite(param_grads).all()
            and (arg_grads is None or np.isfinite(arg_grads).all())
            and all(np.isfinite(o).all() for o in outputs)
        ):
            return None
        return outputs, (list(arg_grads) if arg_grads is not None else None), param_grads

    def _changed_at(self, index: int, left, right) -> GraphChangedError:
        guard = self.tape.guards[index]
        return self._changed(index, COMPARE[guard.symbol](left, right))

    def _warn_fallbacks(self) -> None:
        fallbacks, self._fallbacks = self._fallbacks, []
        for spec, role, reason in fallbacks:
            warnings.warn(
                _fallback_message(f"batched replay of {self.name}", spec, role, reason),
                ReplayFallbackWarning,
                stacklevel=4,
            )

    def _changed(self, index: int, agrees) -> GraphChangedError:
        guard = self.tape.guards[index]
        agrees = np.broadcast_to(agrees, np.shape(agrees) or (1,))
        differing = np.flatnonzero(agrees != guard.result)
        right = self.tape._describe_slot(guard.right) if guard.right_is_slot else shorten(guard.right)
        return GraphChangedError(
            f"batched replay of {self.name}: the comparison {self.tape._describe_slot(guard.left)} "
            f"{guard.symbol} {right} was {guard.result} when the graph was recorded, but is "
            f"{not guard.result} for {len(differing)} example(s) of the batch (the first is example "
            f"{differing[0]}): Python would take another branch there, so one recorded graph cannot "
            f"serve the whole batch"
        )


def _depends_on_inputs(tape: Tape) -> list[bool]:
    """Per slot: whether its value depends on the tape's inputs (one value per example)."""
    batch = [True] * tape.n_inputs + [False] * len(tape.params) + [False] * len(tape.instructions)
    for instr in tape.instructions:
        batch[instr.slot] = any(map(batch.__getitem__, instr.inputs))
    return batch


def _shape_of(structure):
    """The array shape of a rectangular nested structure (() for a number), or None if ragged."""
    if structure is LEAF:
        return ()
    shapes = {_shape_of(item) for item in structure}
    if len(shapes) > 1 or None in shapes:
        return None
    return (len(structure), *(shapes.pop() if shapes else ()))


class _BatchedCode(_CodeWriter):
    """Writes the numpy code of a batched tape: the same lines, on arrays of one value per example."""

    def __init__(self, batched: BatchedTape):
        super().__init__(batched.tape)
        self.batched = batched

    def _rule(self, role: str, spec) -> str:
        rule = self.batched._rules[id(spec)]
        return self._global(role, spec, lambda: getattr(rule, role))

    def source(self) -> str:
        batched, names = self.batched, self.names
        tape = batched.tape
        body, guards_at = self._prologue()
        body.append("# forward: one line per node, on arrays of one value per example")
        for instr in tape.instructions:
            arguments = _tuple_source([names[i] for i in instr.inputs])
            body.append(
                f"{names[instr.slot]} = {self._rule('forward', instr.spec)}({arguments}, {self._params(instr.params)})"
            )
            body += self._guard_lines(guards_at.get(instr.slot, ()))
        outputs = [names[cast(int, slot)] if is_slot else self._literal(slot) for is_slot, slot in tape.outputs]
        body.append(f"outputs = {_tuple_source(outputs)}")
        body.append("if upstream is None: return outputs, None, None")
        if tape.loss is None:  # f returned no Value: forward only (a backward pass is refused before it runs)
            return self._function_source(body)
        body.append("# backward: per example for values that depend on it, summed over the batch for parameters")
        loss = names[tape.loss]
        body.append(f"g_{loss} = upstream")
        assigned = {tape.loss}
        for instr in reversed(tape.instructions):
            if not tape._needs_grad[instr.slot] or not instr.inputs:
                continue
            inputs = [names[i] for i in instr.inputs]
            partials = [f"d{i}" for i in range(len(inputs))]
            body.append(
                f"{_unpack_source(partials)} = {self._rule('derivative', instr.spec)}("
                f"{_tuple_source(inputs)}, {names[instr.slot]}, {self._params(instr.params)})"
            )
            upstream = f"g_{names[instr.slot]}"
            contributions = []
            shared = [
                (slot, partial)
                for slot, partial in zip(instr.inputs, partials)
                if batched.is_batch[instr.slot] and not batched.is_batch[slot]
            ]
            if len(shared) == 1:  # a value shared by the batch, used by per-example nodes
                contributions.append((shared[0][0], f"_total({shared[0][1]}, {upstream})"))
            elif shared:  # several: one matrix-vector product sums them all over the batch
                totals = [f"t{i}" for i in range(len(shared))]
                body.append(f"{_unpack_source(totals)} = _totals({_tuple_source([p for _, p in shared])}, {upstream})")
                contributions += [(slot, total) for (slot, _), total in zip(shared, totals)]
            for slot, partial in zip(instr.inputs, partials):
                if batched.is_batch[slot] or not batched.is_batch[instr.slot]:
                    contributions.append((slot, f"{partial} * {upstream}"))
            for slot, contribution in contributions:
                target = f"g_{names[slot]}"
                if slot in assigned:
                    body.append(f"{target} = {target} + {contribution}")  # never +=: arrays may be shared
                else:
                    body.append(f"{target} = {contribution}")
                    assigned.add(slot)
        input_grads = [f"g_{names[s]}" if s in assigned else "0.0" for s in range(tape.n_inputs)]
        param_grads = [
            f"g_{names[tape.n_inputs + i]}" if tape.n_inputs + i in assigned else "0.0" for i in tape._grad_params
        ]
        body.append(f"return outputs, [{', '.join(input_grads)}], {_tuple_source(param_grads)}")
        return self._function_source(body)

    def _function_source(self, body: list[str]) -> str:
        header = [
            f"# Batched replay of {self.tape.name}: inputs x are arrays (one value per example), "
            f"parameters p are shared scalars.",
            "def forward_backward(inputs, parameters, upstream, size):",
        ]
        return "\n".join(header + ["    " + line for line in body]) + "\n"

    def _guard_lines(self, indices) -> list[str]:
        lines = []
        for index in indices:
            guard = self.tape.guards[index]
            left = self.names[guard.left]
            right = self.names[guard.right] if guard.right_is_slot else self._literal(guard.right)
            test = f"({left} {guard.symbol} {right})"
            condition = f"not np.all{test}" if guard.result else f"np.any{test}"
            lines.append(f"if {condition}: raise _changed({index}, {test})")
        return lines


# ---------------------------------------------------------------------------------------------
# The batched engine: a whole graph with numpy, level by level
# ---------------------------------------------------------------------------------------------


@dataclass
class _Group:
    """The nodes of one op (with the same parameters and input count) at one level of the graph."""

    rule: _BatchRule
    params: dict | None
    out: np.ndarray  # their slots
    inputs: np.ndarray  # (input count, nodes): the slots of their inputs
    unique: list  # per input position: no slot repeats (so grads[slots] += ... adds each once)


class _LevelProgram:
    """A tape evaluated level by level: a node's level is one more than its inputs' highest,
    so the nodes of one level depend only on earlier levels, and each op's nodes at a level
    run as one array operation (through the same ``_BatchRule`` as batched replay)."""

    def __init__(self, tape: Tape, on_fallback):
        self.tape = tape
        level = [0] * tape.n_slots
        for instr in tape.instructions:
            level[instr.slot] = 1 + max((level[i] for i in instr.inputs), default=0)
        rules: dict[int, _BatchRule] = {}
        self.rules = rules
        # (level, id(spec), input count, parameters) -> the nodes that run as one array operation
        grouped: dict[tuple[int, int, int, tuple[Any, ...]], list[Instruction]] = {}
        for instr in tape.instructions:
            if id(instr.spec) not in rules:
                rules[id(instr.spec)] = _BatchRule(instr.spec, on_fallback)
            key = (level[instr.slot], id(instr.spec), len(instr.inputs), _params_key(instr.params or {}))
            grouped.setdefault(key, []).append(instr)
        depth = max(level, default=0)
        self.forward_plan: list[list[_Group]] = [[] for _ in range(depth + 1)]
        self.backward_plan: list[_Group] = []
        for (node_level, spec_id, _, _), instrs in grouped.items():
            self.forward_plan[node_level].append(self._group(rules[spec_id], instrs))
        for (_, spec_id, arity, _), instrs in sorted(grouped.items(), key=lambda item: -item[0][0]):
            needed = [i for i in instrs if tape._needs_grad[i.slot]]
            if needed and arity:
                self.backward_plan.append(self._group(rules[spec_id], needed))
        self.guards_at: list[list[int]] = [[] for _ in range(depth + 1)]
        for index, guard in enumerate(tape.guards):
            at = max(level[guard.left], level[guard.right] if guard.right_is_slot else 0)
            self.guards_at[at].append(index)

    @staticmethod
    def _group(rule: _BatchRule, instrs: list[Instruction]) -> _Group:
        arity = len(instrs[0].inputs)
        inputs = np.array([instr.inputs for instr in instrs], dtype=np.intp).reshape(len(instrs), arity).T
        unique = [len(np.unique(row)) == len(row) for row in inputs]
        return _Group(rule, instrs[0].params, np.array([i.slot for i in instrs], dtype=np.intp), inputs, unique)

    def run(self, flat: list, starts: list | None):
        """(outputs, input grads, parameter grads) as lists of floats; grads None without starts."""
        tape = self.tape
        values = np.empty(tape.n_slots)
        values[: tape.n_inputs] = flat
        values[tape.n_inputs : tape.first_interior] = [p.data for p in tape.params]
        with np.errstate(all="ignore"):
            for level, groups in enumerate(self.forward_plan):
                for group in groups:
                    values[group.out] = group.rule.forward(tuple(values[group.inputs]), group.params)
                self._check_guards(self.guards_at[level], values)
            outputs = [float(values[cast(int, slot)]) if is_slot else slot for is_slot, slot in tape.outputs]
            if starts is None:
                return outputs, None, None
            assert tape.loss is not None  # gradients are asked for only when f returned a Value
            grads = np.zeros(tape.n_slots)
            grads[tape.loss] = 1.0
            for group in self.backward_plan:
                upstream = grads[group.out]
                out = values[group.out]
                skip = (upstream == 0.0) & np.isfinite(out)  # as backward(): nothing passes on
                if skip.all():
                    continue
                partials = group.rule.derivative(tuple(values[group.inputs]), out, group.params)
                for slots, partial, unique in zip(group.inputs, partials, group.unique):
                    contribution = partial * upstream
                    if skip.any():
                        contribution = np.where(skip, 0.0, contribution)
                    if unique:
                        grads[slots] += contribution
                    else:
                        np.add.at(grads, slots, contribution)
        input_grads = grads[: tape.n_inputs].tolist()
        param_grads = [start + float(grads[tape.n_inputs + i]) for i, start in zip(tape._grad_params, starts)]
        return outputs, input_grads, param_grads

    def _check_guards(self, indices, values) -> None:
        tape = self.tape
        for index in indices:
            guard = tape.guards[index]
            left = float(values[guard.left])
            right = float(values[guard.right]) if guard.right_is_slot else guard.right
            if COMPARE[guard.symbol](left, right) != guard.result:
                raise tape._changed(index, left, right)


class BatchedRecorder:
    """``f``'s recorded graph evaluated with numpy, level by level (the ``batched`` engine).

        step = BatchedRecorder(loss_fn)
        loss = step.backward(X, y)   # like Recorder: loss_fn's outputs, parameters' .grad filled in

    Unlike ``BatchedTape`` it needs no per-example function: it records ``f`` as it is (the
    whole batch's loss, say) and runs every node of one op at one depth of the graph as one
    array operation. A wide graph (many examples through one model) has few levels of many
    nodes, where numpy pays. Its numbers equal eager's up to rounding: the gradient sums
    are added in another order. Where numpy meets trouble (a domain error, a changed
    branch) the step runs on the scalar tape, which gives eager's numbers or error. It
    records again when a comparison in ``f`` turns out otherwise; ``recordings`` counts.
    """

    def __init__(self, f: Callable):
        if not callable(f):
            raise TypeError(f"BatchedRecorder(f): f must be a function, got {shorten(f)}")
        self.function = f
        self.tape: Tape | None = None
        self.recordings = 0
        self._program: _LevelProgram | _LiftedEngineProgram | None = None
        self._fallbacks: list = []

    def forward(self, *args):
        """``f(*args)``'s outputs as numbers (recording again if the graph changed)."""
        return self._call(args, backward=False)

    def backward(self, *args):
        """Forward and backward: ``f``'s outputs, with the parameters' ``.grad`` filled in."""
        return self._call(args, backward=True)

    __call__ = forward

    @property
    def fallback_ops(self) -> list[str]:
        rules = self._program.rules.values() if self._program is not None else ()
        return sorted({rule.spec.name for rule in rules if "examples" in rule.mode.values()})

    def _call(self, args, backward: bool):
        if self.tape is not None:
            try:
                return self._run(args, backward)
            except GraphChangedError:
                pass
        self.tape = record(self.function, *args)
        self.recordings += 1
        self._program = self._plan(self.tape, lambda *fallback: self._fallbacks.append(fallback))
        return self._run(args, backward)

    def _plan(self, tape: Tape, note: Callable[..., None]) -> _LevelProgram | _LiftedEngineProgram:
        """The array program for a recorded tape: every op's nodes at one depth as one array op."""
        return _LevelProgram(tape, note)

    def _run(self, args, backward: bool):
        tape, program = self.tape, self._program
        assert tape is not None and program is not None  # _call records before it runs
        flat, value_args = tape._flat_args(args)
        if backward and tape.loss is None:
            raise TypeError(
                f"batched engine of {tape.name}: {tape.name} returned no Value, so there is nothing to differentiate"
            )
        with _gradient_lock:
            starts = [_grad_number(tape.params[i]) for i in tape._grad_params] if backward else None
            try:
                outputs, input_grads, param_grads = program.run(flat, starts)
            except GraphChangedError:
                raise
            except Exception:
                # numpy met what the rules handle one number at a time: the scalar tape decides
                return tape.backward(*args) if backward else tape.forward(*args)
            finally:
                fallbacks, self._fallbacks = self._fallbacks, []
                for spec, role, reason in fallbacks:
                    warnings.warn(
                        _fallback_message(f"batched engine of {tape.name}", spec, role, reason),
                        ReplayFallbackWarning,
                        stacklevel=4,
                    )
            if backward:
                for i, grad in zip(tape._grad_params, param_grads):
                    tape.params[i].grad = grad
                for index, value in value_args:
                    _add_grad(value, input_grads[index])
        return tape._shape_outputs(outputs)

    def __repr__(self) -> str:
        return f"<BatchedRecorder of {_function_name(self.function)}: {self.recordings} recording(s)>"


# ---------------------------------------------------------------------------------------------
# The lifted engine: a whole graph as matrix products and array operations
# ---------------------------------------------------------------------------------------------


class _LiftedEngineProgram:
    """A whole recorded graph (every example in it) run as a ``LiftedProgram``: the weighted
    sums that read different inputs with the same weights become one matrix product. Where
    that meets what the op rules handle one number at a time (a domain error, inf, nan), the
    step runs level by level as the ``batched`` engine does (which falls back in turn)."""

    def __init__(self, tape: Tape, on_fallback):
        self.tape = tape
        self.on_fallback = on_fallback
        self.rules: dict[int, _BatchRule] = {}
        per_example = _depends_on_inputs(tape)
        self.lifted = LiftedProgram(
            tape, per_example, self.rules, lambda spec: _BatchRule(spec, on_fallback), whole_graph=True
        )
        order = self.lifted.parameter_order
        self.params = [tape.params[i] for i in order]
        position = {index: k for k, index in enumerate(order)}
        self.grad_positions = np.array([position[i] for i in tape._grad_params], dtype=np.intp)
        self.loss_per_example = per_example[int(tape.loss)] if tape.loss is not None else False
        self._levels: _LevelProgram | None = None

    def run(self, flat: list, starts: list | None):
        """(outputs, input grads, parameter grads) as lists of floats; grads None without starts."""
        parameters = np.fromiter(map(_data_of, self.params), float, len(self.params))
        inputs = [np.array(flat, dtype=float).reshape(1, -1)]
        upstream = None if starts is None else (np.ones(1) if self.loss_per_example else 1.0)
        try:
            outputs, input_grads, grads = self.lifted.run(
                inputs, parameters, upstream, self._changed, starts is not None
            )
        except GraphChangedError:
            raise
        except Exception:
            return self._level_program().run(flat, starts)
        outputs = [float(o[0]) if type(o) is np.ndarray else o for o in outputs]
        if starts is None:
            return outputs, None, None
        param_grads = grads[self.grad_positions]
        if not (
            np.isfinite(param_grads).all() and np.isfinite(input_grads).all() and all(math.isfinite(o) for o in outputs)
        ):
            return self._level_program().run(flat, starts)
        param_grads = [start + grad for start, grad in zip(starts, param_grads.tolist())]
        return outputs, input_grads[:, 0].tolist(), param_grads

    def _level_program(self) -> _LevelProgram:
        if self._levels is None:
            self._levels = _LevelProgram(self.tape, self.on_fallback)
        return self._levels

    def _changed(self, index: int, left, right) -> GraphChangedError:
        as_number = lambda x: float(np.ravel(x)[0]) if isinstance(x, np.ndarray) else x  # noqa: E731
        return self.tape._changed(index, as_number(left), as_number(right))


class LiftedRecorder(BatchedRecorder):
    """``f``'s recorded graph lifted to array code (the ``lifted`` engine).

        step = LiftedRecorder(loss_fn)
        loss = step.backward(X, y)   # like BatchedRecorder: f's outputs, parameters' .grad filled in

    ``f`` builds the whole batch's loss, as for ``BatchedRecorder``. In its graph the
    weighted sums (fused ``weighted_sum`` nodes, or chains of ``*`` and ``+``) that read
    different examples' inputs with the same weights are found and run as one matrix product;
    the same op over a group of nodes at one depth is one array operation
    (``minigrad_replay.lifting``). Its numbers equal eager's up to rounding. It records again
    when a comparison in ``f`` turns out otherwise; ``recordings`` counts.
    """

    def _plan(self, tape: Tape, note: Callable[..., None]) -> _LevelProgram | _LiftedEngineProgram:
        """The weighted sums lifted to matrix products; a graph with none runs level by level."""
        try:
            return _LiftedEngineProgram(tape, note)
        except CannotLift:
            return _LevelProgram(tape, note)

    def __repr__(self) -> str:
        return f"<LiftedRecorder of {_function_name(self.function)}: {self.recordings} recording(s)>"
