"""Graph replay: record a function's graph once, then run it again on new numbers.

Building a ``Value`` per operation is what makes a scalar engine slow; the graph of a
training step is the same from one step to the next, only the numbers change. So:

    tape = record(loss_fn, X, y)     # runs loss_fn once on Values and keeps its graph
    loss = tape.backward(X, y)       # forward and backward on plain floats; the
                                     # parameters' .grad are filled in as by loss.backward()

``record`` turns the graph into straight-line Python, which you can read in
``tape.source``: forward, one line per node; backward, one line per node too, its
gradient as the sum over its users of ``(d user / d node) * user.grad`` (the chain
rule the kernel applies as ``child.grad += partial * node.grad``, gathered per node). Leaves that are the function's arguments become its inputs; every
other leaf (a model's parameters, constants) is read from its ``.data`` at each replay,
so an optimizer's updates are seen.

A recorded graph stays valid only while Python's control flow takes the same path.
Every comparison of Values made while recording (``if x > 0:``) becomes a guard: when
a replay would go the other way, it raises ``GraphChangedError`` instead of returning
numbers of another function. Branches inside an op (relu at 0) need no guard.
``Recorder(f)`` records on first use and again whenever that happens; ``tape.verify``
traces ``f`` anew and checks that the tape still fits it.

``tape.batched()`` evaluates the same per-example graph for a whole batch at once with
numpy, using each op's ``np_forward`` / ``np_derivative`` rules.

How an op speeds up replay: its ``OpSpec(code=...)`` may give expression templates,

    code={"forward": "{a} * {b}", "derivative": ("{b}", "{a}")}

written with the op's input names, ``{out}`` (the op's result, derivative only) and its
parameters (``{exponent}``). A template may instead be a callable that gets the inputs'
expressions as strings (and ``out``, for the derivative) plus the parameters' values as
keywords, and returns the expression(s): that is how a variadic op writes one. An op
without templates is replayed by calling its ``forward`` and ``derivative``. Templates
only need to agree with the rules where those return a number: when generated code
raises, replay runs the op rules themselves (the reference), which give the result or
the error that names the op.
"""

from __future__ import annotations

import inspect
import itertools
import linecache
import math
import numbers
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import MiniGradError, OpSpecError
from .value import _COMPARE, Value, _as_op_error, _partials_error, comparison_observers, evaluate, topological_order

__all__ = [
    "record", "record_batch", "Recorder", "Tape", "BatchedTape",
    "GraphChangedError", "ReplayArgumentError", "ReplayFallbackWarning",
]


class GraphChangedError(MiniGradError):
    """The recorded graph no longer fits: Python would take another path, or ``f`` now builds
    another graph. Record again."""


class ReplayArgumentError(MiniGradError, TypeError):
    """A replay was given arguments of another count or shape than the ones it was recorded with."""


class ReplayFallbackWarning(UserWarning):
    """Batched replay met an op without numpy rules and evaluates it one example at a time."""


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
        f"{where} is {obj!r} of type {type(obj).__name__}; replay takes numbers, Values, and "
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
            raise ReplayArgumentError(f"{where}: expected a number, got {obj!r} ({type(obj).__name__})")
        return
    if isinstance(obj, np.ndarray):
        if obj.ndim == 1 and len(obj) == len(structure) and all(item is LEAF for item in structure):
            numbers_out.extend(obj.astype(float).tolist())
            return
        obj = obj.tolist()
    if not isinstance(obj, (list, tuple)):
        raise ReplayArgumentError(f"{where}: expected {_describe_structure(structure)}, got {obj!r}")
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
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [f"argument {i} ({names[i]})" if i < len(names) else f"argument {i}" for i in range(count)]


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


def _all_nodes(roots: list[Value]) -> list[Value]:
    """Every node the roots depend on, inputs before users: the kernel's own order, so that
    replay adds up gradients in exactly the order ``backward()`` does."""
    return topological_order(*roots)


def record(f: Callable, *example_args) -> "Tape":
    """Run ``f(*example_args)`` once on Values and return its graph as a replayable ``Tape``.

    ``example_args`` are numbers, Values, or nested lists / tuples / numpy arrays of them;
    each number becomes an input of the tape. ``f`` returns a Value (or a nested list /
    tuple of Values and numbers: the first Value is the one ``backward`` differentiates).
    """
    if not callable(f):
        raise TypeError(f"record(f, *args): f must be a function, got {f!r}")
    where = _argument_names(f, len(example_args))
    leaves: list = []
    structures = tuple(_structure_and_leaves(arg, where[i], leaves) for i, arg in enumerate(example_args))
    inputs = [leaf if isinstance(leaf, Value) else Value(leaf) for leaf in leaves]
    seen: dict[Value, int] = {}
    for i, leaf in enumerate(inputs):
        if leaf in seen:
            raise ReplayArgumentError(
                f"record: the same Value {leaf!r} is passed twice as an argument; replay gives every "
                f"argument its own number, so pass it once"
            )
        if not leaf.is_leaf:
            raise ReplayArgumentError(
                f"record: argument Value {leaf!r} is the result of an op ({leaf._op!r}); an argument "
                f"must be a leaf (a number or a Value made with Value(...))"
            )
        seen[leaf] = i
    position = [0]
    call_args = [_unflatten(s, inputs, position) for s in structures]  # f sees Values where numbers were
    comparisons: list = []

    def observe(left, right, symbol, result):
        comparisons.append((left, right, symbol, result))

    comparison_observers.append(observe)
    try:
        output = f(*call_args)
    finally:
        comparison_observers.remove(observe)
    return Tape(f, structures, inputs, output, comparisons)


def record_batch(f: Callable, *example_args) -> "BatchedTape":
    """``record(f, *example_args).batched()``: ``f`` computes one example's loss; the batched
    tape runs it on a whole batch at once (each argument gains a leading batch axis)."""
    return record(f, *example_args).batched()


class Recorder:
    """``f``, replayed: recorded on its first call, and recorded again whenever the graph no
    longer fits (a ``GraphChangedError``), e.g. when a comparison in ``f`` turns out otherwise.

        step = Recorder(loss_fn)
        loss = step.backward(X, y)    # like tape.backward; ``step.recordings`` counts recordings

    Useful when ``f``'s control flow changes now and then; if it changes at every call,
    running ``f`` on Values is faster than recording it again and again.
    """

    def __init__(self, f: Callable):
        if not callable(f):
            raise TypeError(f"Recorder(f): f must be a function, got {f!r}")
        self.function = f
        self.tape: Tape | None = None
        self.recordings = 0

    def forward(self, *args):
        return self._call("forward", args)

    def backward(self, *args):
        return self._call("backward", args)

    def value_and_grad(self, *args):
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
        return f"<Recorder of {getattr(self.function, '__name__', 'f')}: {self.recordings} recording(s)>"


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
        self.name = getattr(function, "__name__", "f")
        self.structures = structures
        self.arg_names = _argument_names(function, len(structures))
        self.n_inputs = len(inputs)
        output_leaves: list = []
        self.output_structure = _output_structure(output, output_leaves, self.name)
        value_outputs = [o for o in output_leaves if isinstance(o, Value)]
        compared = [v for left, right, _, _ in comparisons for v in (left, right) if isinstance(v, Value)]
        nodes = _all_nodes(value_outputs + compared)

        slots: dict[Value, int] = {leaf: i for i, leaf in enumerate(inputs)}
        self.params: list[Value] = []
        for n in nodes:
            if n._spec is None and n not in slots:
                slots[n] = self.n_inputs + len(self.params)
                self.params.append(n)
        self.first_interior = self.n_inputs + len(self.params)
        self.instructions: list[Instruction] = []
        for n in nodes:
            if n._spec is not None:
                slots[n] = self.first_interior + len(self.instructions)
                params = dict(n._params) if n._params else None
                self.instructions.append(Instruction(slots[n], n._spec, params, tuple(slots[c] for c in n._prev)))
        self.n_slots = self.first_interior + len(self.instructions)
        self.outputs = [(True, slots[o]) if isinstance(o, Value) else (False, float(o)) for o in output_leaves]
        self.loss = next((slot for is_slot, slot in self.outputs if is_slot), None)
        self.guards = [
            Guard(slots[left], symbol, slots[right] if isinstance(right, Value) else float(right),
                  isinstance(right, Value), bool(result))
            for left, right, symbol, result in comparisons
        ]
        # where each guard is checked: after the last node it reads (the leaves: before any node)
        self.guards_at: dict[int, list[int]] = {}
        for index, guard in enumerate(self.guards):
            self.guards_at.setdefault(max(guard.position(), self.first_interior - 1), []).append(index)
        self.recorded_outputs = [o.data if isinstance(o, Value) else float(o) for o in output_leaves]
        self._needs_grad = self._loss_ancestry()
        self._forward_only = None
        self._forward_backward = None
        if self.loss is not None:
            self.source = self._generate(with_backward=True)
        else:  # nothing to differentiate: the forward code is all there is
            self.source = self._generate(with_backward=False)

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
            tuple((i.spec.name, i.spec.plugin, tuple(sorted((i.params or {}).items())), i.inputs)
                  for i in self.instructions),
            tuple((g.left, g.symbol, g.right, g.right_is_slot, g.result) for g in self.guards),
            tuple(self.outputs),
            self.output_structure,
        )

    def matches(self, other: "Tape") -> bool:
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
            if not (mine == eager or math.isclose(mine, eager, rel_tol=rel_tol, abs_tol=1e-12)
                    or (math.isnan(mine) and math.isnan(eager))):
                raise GraphChangedError(
                    f"replay of {self.name}: output {i} is {mine!r} on replay but {eager!r} when run on "
                    f"Values. {self.name} reads a number the graph does not show (e.g. Value(x.data) or "
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
                f"replay of {self.name}: recorded with {len(self.structures)} argument(s) ({names}), "
                f"got {len(args)}"
            )
        flat: list = []
        value_args: list = []
        for arg, structure, where in zip(args, self.structures, self.arg_names):
            _flatten_like(arg, structure, f"replay of {self.name}: {where}", flat, value_args)
        return flat, value_args

    def _run(self, args, backward: bool):
        flat, value_args = self._flat_args(args)
        if backward and self.loss is None:
            raise TypeError(f"replay of {self.name}: {self.name} returned no Value, so there is nothing to differentiate")
        try:
            if backward:
                outputs, arg_grads, param_grads = self._forward_backward(flat, self.params)
            else:
                outputs = self._forward_function()(flat, self.params)
        except (ArithmeticError, ValueError, TypeError):
            # The generated code is a fast copy of the op rules; the rules themselves decide:
            # they give the exact result, or raise the error that names the op.
            outputs, arg_grads, param_grads = self._interpret(flat, backward)
        if backward:
            _add_grads(self.params, param_grads)
        outputs = self._shape_outputs(outputs)
        return (outputs, arg_grads, value_args) if backward else (outputs, None, None)

    def _generate(self, with_backward: bool) -> str:
        code = _ScalarCode(self)
        source = code.source(with_backward)
        namespace = {"math": math, "_changed": self._changed, **code.globals}
        label = f"<replay of {self.name}{'' if with_backward else ', forward'}>"
        function = _compile(self, source, label, namespace)
        if with_backward:
            self._forward_backward = function["forward_backward"]
        else:
            self._forward_only = function["forward"]
        return source

    def _forward_function(self):
        if self._forward_only is None:
            self._generate(with_backward=False)
        return self._forward_only

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
            f"{self._describe_slot(guard.right) if guard.right_is_slot else repr(guard.right)} was "
            f"{guard.result} when the graph was recorded but is {now} now "
            f"({left!r} {guard.symbol} {right!r}): Python would take another branch, so the recorded "
            f"graph no longer fits. Record it again: record({self.name}, *args)"
        )

    def _describe_slot(self, slot: int) -> str:
        if slot < self.n_inputs:
            return f"input x{slot}"
        if slot < self.first_interior:
            param = self.params[slot - self.n_inputs]
            return f"parameter {param.label!r}" if param.label else f"parameter p{slot - self.n_inputs}"
        instr = self.instructions[slot - self.first_interior]
        return f"the {instr.spec.name} node v{slot - self.first_interior}"

    # -- the reference: the op rules themselves, one node at a time -----------------------------
    def _interpret(self, flat_args: list, backward: bool):
        values = list(flat_args) + [p.data for p in self.params] + [0.0] * len(self.instructions)
        guards_at = self.guards_at
        self._check_guards(guards_at.get(self.first_interior - 1, ()), values)
        for instr in self.instructions:
            values[instr.slot] = evaluate(instr.spec, [values[i] for i in instr.inputs], instr.params)
            self._check_guards(guards_at.get(instr.slot, ()), values)
        outputs = [values[slot] if is_slot else slot for is_slot, slot in self.outputs]
        if not backward:
            return outputs, None, None
        grads = [0.0] * self.n_slots
        grads[self.loss] = 1.0
        for instr in reversed(self.instructions):
            if not self._needs_grad[instr.slot]:
                continue
            inputs = [values[i] for i in instr.inputs]
            try:
                if instr.params:
                    partials = instr.spec.derivative(*inputs, values[instr.slot], **instr.params)
                else:
                    partials = instr.spec.derivative(*inputs, values[instr.slot])
            except (ArithmeticError, ValueError) as error:
                raise _as_op_error(instr.spec, inputs, error) from error
            if len(partials) != len(instr.inputs):
                raise _partials_error(instr.spec, len(instr.inputs), partials)
            upstream = grads[instr.slot]
            for i, partial in zip(instr.inputs, partials):
                grads[i] += partial * upstream
        return outputs, grads[: self.n_inputs], grads[self.n_inputs : self.first_interior]

    def _check_guards(self, indices, values) -> None:
        for index in indices:
            guard = self.guards[index]
            left = values[guard.left]
            right = values[guard.right] if guard.right_is_slot else guard.right
            if _COMPARE[guard.symbol](left, right) != guard.result:
                raise self._changed(index, left, right)

    # -- batches -------------------------------------------------------------------------------
    def batched(self) -> "BatchedTape":
        """This graph evaluated for a whole batch at once with numpy (see ``BatchedTape``)."""
        return BatchedTape(self)




def _add_grads(values: list, grads) -> None:
    for value, grad in zip(values, grads):
        if type(value.grad) is float:
            value.grad += grad
        else:
            _add_grad(value, grad)


def _add_grad(value: Value, grad) -> None:
    if type(value.grad) is Value:  # a graph-building gradient from backward(create_graph=True)
        value.grad = value.grad.data
    value.grad += grad


def _output_structure(output, leaves: list, name: str):
    if isinstance(output, (Value, numbers.Real)):
        leaves.append(output)
        return LEAF
    if isinstance(output, (list, tuple)):
        return (type(output), tuple(_output_structure(o, leaves, name) for o in output))
    raise TypeError(
        f"record: {name} returned {output!r} of type {type(output).__name__}; it must return a Value "
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
                f"node v{i} was {a.spec.name}{_params_text(a.params)} of {a.inputs} and is now "
                f"{b.spec.name}{_params_text(b.params)} of {b.inputs}"
            )
    if len(recorded.instructions) != len(fresh.instructions):
        return f"it has {len(fresh.instructions)} nodes, not {len(recorded.instructions)}"
    if [(g.left, g.symbol, g.right, g.result) for g in recorded.guards] != \
            [(g.left, g.symbol, g.right, g.result) for g in fresh.guards]:
        return "its comparisons (Python control flow) differ"
    if recorded.outputs != fresh.outputs:
        return "it returns other outputs"
    if recorded.output_structure != fresh.output_structure:
        return "its output has another shape"
    return ""


def _params_text(params) -> str:
    return f"({', '.join(f'{k}={v!r}' for k, v in params.items())})" if params else ""


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
# Code generation for floats
# ---------------------------------------------------------------------------------------------

_ONE = {"1", "1.0", "(1.0)", "(1)"}
_MINUS_ONE = {"-1", "-1.0", "(-1.0)", "(-1)"}


_TERMS_PER_LINE = 64  # long sums are split over lines (the compiler nests a + b + ... deeply)


def _sum_lines(target: str, terms: list[str]) -> list[str]:
    """``target = t1 + t2 + ...``, continued as ``target = target + ...``: the same left-to-right
    order of additions as accumulating the terms one by one."""
    lines = [f"{target} = {' + '.join(terms[:_TERMS_PER_LINE])}"]
    for start in range(_TERMS_PER_LINE, len(terms), _TERMS_PER_LINE):
        lines.append(f"{target} = {target} + {' + '.join(terms[start:start + _TERMS_PER_LINE])}")
    return lines


def _is_atom(expression: str) -> bool:
    """Whether ``expression`` can be multiplied without parentheses: a name, a number, or one
    parenthesized group."""
    if expression.isidentifier() or expression.replace(".", "", 1).isdigit():
        return True
    if not (expression.startswith("(") and expression.endswith(")")):
        return False
    depth = 0
    for i, char in enumerate(expression):
        depth += char == "("
        depth -= char == ")"
        if depth == 0 and i < len(expression) - 1:
            return False  # "(a) * (b)": the first group closes before the end
    return True


def _literal(value, namespace: dict) -> str:
    """Source text for a parameter value: a number literal, or a global holding it."""
    if type(value) in (int, float) and math.isfinite(value):
        text = repr(value)
        return f"({text})" if value < 0 else text
    name = f"const_{len(namespace)}"
    namespace[name] = value
    return name


class _CodeWriter:
    """What both code generators share: a variable name per slot (x inputs, p other leaves,
    v nodes) and ``globals``, the functions the generated code calls, each under one name."""

    def __init__(self, tape: Tape):
        self.tape = tape
        self.globals: dict = {}
        self._global_names: dict[tuple, str] = {}
        self.names = [f"x{i}" for i in range(tape.n_inputs)]
        self.names += [f"p{i}" for i in range(len(tape.params))]
        self.names += [f"v{i}" for i in range(len(tape.instructions))]

    def _global(self, role: str, spec, make: Callable[[], Any]) -> str:
        """The global name of an op's rule for ``role`` (unique even if two ops share a name)."""
        key = (role, id(spec))
        if key not in self._global_names:
            base = f"{role}_{spec.name}"
            name, n = base, 2
            while name in self.globals:
                name, n = f"{base}_{n}", n + 1
            self.globals[name] = make()
            self._global_names[key] = name
        return self._global_names[key]

    def _prologue(self) -> tuple[list[str], dict[int, list[int]]]:
        """The lines that unpack the inputs and the other leaves (and check the guards on
        them), and after which node each other guard is checked."""
        tape, names = self.tape, self.names
        body = []
        if tape.n_inputs:
            body.append(f"{', '.join(names[: tape.n_inputs])}, = inputs")
        if tape.params:
            body.append(f"{', '.join(names[tape.n_inputs : tape.first_interior])}, = [p.data for p in parameters]")
        body += self._guard_lines(tape.guards_at.get(tape.first_interior - 1, ()))
        return body, tape.guards_at


class _ScalarCode(_CodeWriter):
    """Writes the straight-line Python for one tape."""

    def _function(self, role: str, spec) -> str:
        """A global name for an op's forward / derivative rule."""
        return self._global(role, spec, lambda: getattr(spec, role))

    def _template(self, spec, role: str):
        code = spec.code
        if code is None:
            return None
        if not isinstance(code, dict) or not set(code) <= {"forward", "derivative"}:
            raise OpSpecError(
                f"op {spec.name!r} (plugin {spec.plugin!r}): code must be a dict with the keys 'forward' "
                f"and/or 'derivative' (expression templates, see minigrad_core.replay), got {code!r}"
            )
        return code.get(role)

    def _expand(self, spec, role: str, template, inputs: list[str], out: str | None, params) -> Any:
        params = params or {}
        try:
            if callable(template):
                args = inputs + ([out] if role == "derivative" else [])
                return template(*args, **params)
            fields = dict(zip(spec.input_names, inputs))
            if len(fields) != len(inputs):
                raise OpSpecError("a str template needs named inputs; a variadic op gives a callable")
            fields.update({k: _literal(v, self.globals) for k, v in params.items()})
            if role == "derivative":
                return tuple(t.format(out=out, **fields) for t in template)
            return template.format(**fields)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, OpSpecError) as error:
            raise OpSpecError(
                f"op {spec.name!r} (plugin {spec.plugin!r}): its replay {role} template {template!r} failed "
                f"for inputs {inputs}: {type(error).__name__}: {error}"
            ) from error

    def forward_expression(self, instr: Instruction) -> str:
        inputs = [self.names[i] for i in instr.inputs]
        template = self._template(instr.spec, "forward")
        if template is not None:
            expression = self._expand(instr.spec, "forward", template, inputs, None, instr.params)
            if expression is not None:  # a template may decline (None): the rule is called
                return expression
        arguments = inputs + [f"{k}={_literal(v, self.globals)}" for k, v in (instr.params or {}).items()]
        return f"{self._function('forward', instr.spec)}({', '.join(arguments)})"

    def partials(self, instr: Instruction, lines: list) -> list[str]:
        """An expression for each local partial derivative of ``instr`` (appending to ``lines``
        the call of its derivative rule when the op has no template)."""
        inputs = [self.names[i] for i in instr.inputs]
        out = self.names[instr.slot]
        template = self._template(instr.spec, "derivative")
        if template is not None:
            partials = self._expand(instr.spec, "derivative", template, inputs, out, instr.params)
            if partials is not None:
                partials = [str(p).strip() for p in partials]
                if len(partials) != len(inputs):
                    raise _partials_error(instr.spec, len(inputs), partials)
                return partials
        partials = [f"d{instr.slot - self.tape.first_interior}_{i}" for i in range(len(inputs))]
        arguments = inputs + [out] + [f"{k}={_literal(v, self.globals)}" for k, v in (instr.params or {}).items()]
        unpack = ", ".join(partials) + ("," if len(partials) == 1 else "")
        lines.append(f"{unpack} = {self._function('derivative', instr.spec)}({', '.join(arguments)})")
        return partials

    def backward(self) -> list[str]:
        """The chain rule gathered per node: node.grad = sum over its users of partial * user.grad.

        Users come before inputs (reverse topological order), so when a node's line runs
        every term of its sum is known; the terms are added in the order the kernel's
        ``child.grad += partial * node.grad`` would add them, so the sums round alike.
        """
        tape, names = self.tape, self.names
        terms: dict[int, list[str]] = {}
        lines = [f"g_{names[tape.loss]} = 1.0"]
        for instr in reversed(tape.instructions):
            if not tape._needs_grad[instr.slot]:
                continue
            if instr.slot != tape.loss:
                lines += _sum_lines(f"g_{names[instr.slot]}", terms.pop(instr.slot))
            upstream = f"g_{names[instr.slot]}"
            for slot, partial in zip(instr.inputs, self.partials(instr, lines)):
                if partial in _ONE:
                    term = upstream
                elif partial in _MINUS_ONE:
                    term = f"-{upstream}"
                else:
                    term = f"{partial if _is_atom(partial) else f'({partial})'} * {upstream}"
                terms.setdefault(slot, []).append(term)
        for slot in range(tape.first_interior):  # the leaves: inputs and parameters
            if slot in terms and slot != tape.loss:
                lines += _sum_lines(f"g_{names[slot]}", terms.pop(slot))
        return lines

    def source(self, with_backward: bool) -> str:
        tape, names = self.tape, self.names
        function = "forward_backward" if with_backward else "forward"
        lines = [
            f"# Replay of {tape.name}: {tape.n_inputs} input(s) x; {len(tape.params)} other leaves p "
            f"(parameters and constants, read from their .data at each call); {len(tape.instructions)} node(s) v.",
            f"def {function}(inputs, parameters):",
        ]
        body, guards_at = self._prologue()
        body.append("# forward: one line per node")
        for instr in tape.instructions:
            body.append(f"{names[instr.slot]} = {self.forward_expression(instr)}")
            body += self._guard_lines(guards_at.get(instr.slot, ()))
        outputs = ", ".join(names[slot] if is_slot else _literal(slot, self.globals) for is_slot, slot in tape.outputs)
        outputs = f"({outputs},)" if outputs else "()"
        if with_backward:
            body.append("# backward: each node's grad is the sum over its users of (d user / d node) * user.grad")
            body += self.backward()
            grads = [f"g_{names[s]}" if tape._needs_grad[s] else "0.0" for s in range(tape.first_interior)]
            inputs_grads = ", ".join(grads[: tape.n_inputs])
            params_grads = ", ".join(grads[tape.n_inputs :])
            body.append(f"return {outputs}, [{inputs_grads}], ({params_grads}{',' if params_grads else ''})")
        else:
            body.append(f"return {outputs}")
        return "\n".join(lines + ["    " + line for line in body]) + "\n"

    def _guard_lines(self, indices) -> list[str]:
        lines = []
        for index in indices:
            guard = self.tape.guards[index]
            left = self.names[guard.left]
            right = self.names[guard.right] if guard.right_is_slot else _literal(guard.right, self.globals)
            test = f"{left} {guard.symbol} {right}"
            condition = f"not ({test})" if guard.result else test
            lines.append(f"if {condition}: raise _changed({index}, {left}, {right})  # recorded: {test} was {guard.result}")
        return lines


# ---------------------------------------------------------------------------------------------
# Batched replay with numpy
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
    """

    def __init__(self, tape: Tape):
        self.tape = tape
        self.name = tape.name
        batch = [True] * tape.n_inputs + [False] * len(tape.params) + [False] * len(tape.instructions)
        for instr in tape.instructions:
            batch[instr.slot] = any(batch[i] for i in instr.inputs)
        self.is_batch = batch
        fallback = {(i.spec.name, i.spec.plugin) for i in tape.instructions if not _has_numpy_rules(i.spec)}
        self.fallback_ops = sorted(name for name, _ in fallback)
        if fallback:
            named = ", ".join(f"{name!r} (plugin {plugin!r})" for name, plugin in sorted(fallback))
            warnings.warn(
                f"batched replay of {self.name}: op(s) {named} have no numpy rules (np_forward and "
                f"np_derivative), so they are evaluated one example at a time, which is slow. Give "
                f"their OpSpec np_forward / np_derivative to vectorize them.",
                ReplayFallbackWarning,
                stacklevel=3,
            )
        code = _BatchedCode(self)
        self.source = code.source()
        namespace = {"np": np, "_total": _total, "_totals": _totals, "_changed": self._changed}
        namespace.update(code.globals)
        self._forward_backward = _compile(self, self.source, f"<batched replay of {self.name}>", namespace)["forward_backward"]

    def __repr__(self) -> str:
        return f"<BatchedTape of {self.name}: {len(self.tape.instructions)} nodes per example>"

    def _columns(self, args) -> tuple[list, int]:
        tape = self.tape
        if len(args) != len(tape.structures):
            raise ReplayArgumentError(
                f"batched replay of {self.name}: recorded with {len(tape.structures)} argument(s) "
                f"({', '.join(tape.arg_names)}), got {len(args)}"
            )
        columns, size = [], None
        for arg, structure, where in zip(args, tape.structures, tape.arg_names):
            array = np.asarray(arg.data if isinstance(arg, Value) else arg, dtype=float)
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
            flat = array.reshape(size, -1)
            columns += [np.ascontiguousarray(flat[:, j]) for j in range(flat.shape[1])]
        if size is None:
            raise ReplayArgumentError(f"batched replay of {self.name}: {self.name} takes no arguments, so there is no batch")
        return columns, size

    def forward(self, *args):
        """Every output for every example: arrays of shape (batch,) (floats for outputs that
        do not depend on the example)."""
        outputs, _, _ = self._run(args, seed=None)
        return outputs[0] if self.tape.output_structure is LEAF else outputs

    def backward(self, *args, reduce: str = "mean") -> float:
        """Forward and backward for the whole batch; returns the mean (or sum) of the loss over
        the examples and adds its gradient to each parameter's ``.grad``."""
        return self.value_and_grad(*args, reduce=reduce)[0]

    def value_and_grad(self, *args, reduce: str = "mean"):
        """``(loss, grads)``: the reduced loss, and per argument an array of d loss / d argument
        for every example (shaped like the argument). Parameters' ``.grad`` are filled in."""
        if reduce not in ("mean", "sum"):
            raise ValueError(f"batched replay of {self.name}: reduce must be 'mean' or 'sum', got {reduce!r}")
        if self.tape.loss is None:
            raise TypeError(f"batched replay of {self.name}: {self.name} returned no Value to differentiate")
        outputs, arg_grads, size = self._run(args, seed=reduce)
        loss = outputs[[i for i, (is_slot, _) in enumerate(self.tape.outputs) if is_slot][0]]
        loss = float(np.mean(loss) if reduce == "mean" else np.sum(loss)) if np.ndim(loss) else float(loss)
        grads, start = [], 0
        for arg, structure in zip(args, self.tape.structures):
            width = int(np.prod(_shape_of(structure), dtype=int))
            block = [np.broadcast_to(arg_grads[start + j], (size,)) for j in range(width)]
            start += width
            grads.append(np.stack(block, axis=1).reshape((size, *_shape_of(structure))) if block
                         else np.zeros((size, *_shape_of(structure))))
        return loss, tuple(grads)

    def _run(self, args, seed):
        columns, size = self._columns(args)
        tape = self.tape
        if seed is None:
            upstream = None
        else:
            scale = 1.0 / size if seed == "mean" else 1.0
            upstream = np.full(size, scale) if self.is_batch[tape.loss] else scale * size
        outputs, arg_grads, param_grads = self._forward_backward(columns, tape.params, upstream, size)
        if seed is not None:
            _add_grads(tape.params, [float(g) for g in param_grads])
        return outputs, arg_grads, size

    def _changed(self, index: int, agrees) -> GraphChangedError:
        guard = self.tape.guards[index]
        agrees = np.broadcast_to(agrees, np.shape(agrees) or (1,))
        differing = np.flatnonzero(agrees != guard.result)
        right = self.tape._describe_slot(guard.right) if guard.right_is_slot else repr(guard.right)
        return GraphChangedError(
            f"batched replay of {self.name}: the comparison {self.tape._describe_slot(guard.left)} "
            f"{guard.symbol} {right} was {guard.result} when the graph was recorded, but is "
            f"{not guard.result} for {len(differing)} example(s) of the batch (the first is example "
            f"{differing[0]}): Python would take another branch there, so one recorded graph cannot "
            f"serve the whole batch"
        )


def _shape_of(structure):
    """The array shape of a rectangular nested structure (() for a number), or None if ragged."""
    if structure is LEAF:
        return ()
    shapes = {_shape_of(item) for item in structure}
    if len(shapes) > 1 or None in shapes:
        return None
    return (len(structure), *(shapes.pop() if shapes else ()))


def _has_numpy_rules(spec) -> bool:
    return spec.np_forward is not None and spec.np_derivative is not None


def _elementwise(spec, role: str):
    """An op's scalar rule applied example by example (for ops without numpy rules)."""
    rule = getattr(spec, role)

    def apply_rule(*inputs, **params):
        size = max((x.shape[0] for x in inputs if type(x) is np.ndarray and x.ndim), default=None)
        if size is None:
            return evaluate(spec, list(inputs), params) if role == "forward" else rule(*inputs, **params)
        columns = [x.tolist() if type(x) is np.ndarray and x.ndim else [float(x)] * size for x in inputs]
        if role == "forward":
            return np.array([evaluate(spec, list(example), params) for example in zip(*columns)])
        rows = [rule(*example, **params) for example in zip(*columns)]
        for row in rows:
            if len(row) != len(inputs) - 1:
                raise _partials_error(spec, len(inputs) - 1, row)
        return tuple(np.array(column, dtype=float) for column in zip(*rows))

    return apply_rule


class _BatchedCode(_CodeWriter):
    """Writes the numpy code of a batched tape: the same lines, on arrays of one value per example."""

    def __init__(self, batched: BatchedTape):
        super().__init__(batched.tape)
        self.batched = batched

    def _rule(self, role: str, spec) -> str:
        def make():
            if _has_numpy_rules(spec):
                return spec.np_forward if role == "np_forward" else spec.np_derivative
            return _elementwise(spec, "forward" if role == "np_forward" else "derivative")

        return self._global(role, spec, make)

    def source(self) -> str:
        batched, names = self.batched, self.names
        tape = batched.tape
        body, guards_at = self._prologue()
        body.append("# forward: one line per node, on arrays of one value per example")
        for instr in tape.instructions:
            arguments = [names[i] for i in instr.inputs]
            arguments += [f"{k}={_literal(v, self.globals)}" for k, v in (instr.params or {}).items()]
            body.append(f"{names[instr.slot]} = {self._rule('np_forward', instr.spec)}({', '.join(arguments)})")
            body += self._guard_lines(guards_at.get(instr.slot, ()))
        outputs = ", ".join(names[slot] if is_slot else _literal(slot, self.globals) for is_slot, slot in tape.outputs)
        body.append(f"outputs = ({outputs},)" if outputs else "outputs = ()")
        body.append("if upstream is None: return outputs, None, None")
        body.append("# backward: per example for values that depend on it, summed over the batch for parameters")
        loss = names[tape.loss]
        body.append(f"g_{loss} = upstream")
        assigned = {tape.loss}
        for instr in reversed(tape.instructions):
            if not tape._needs_grad[instr.slot]:
                continue
            inputs = [names[i] for i in instr.inputs]
            partials = [f"d{i}" for i in range(len(inputs))]
            arguments = inputs + [names[instr.slot]]
            arguments += [f"{k}={_literal(v, self.globals)}" for k, v in (instr.params or {}).items()]
            unpack = ", ".join(partials) + ("," if len(partials) == 1 else "")
            body.append(f"{unpack} = {self._rule('np_derivative', instr.spec)}({', '.join(arguments)})")
            upstream = f"g_{names[instr.slot]}"
            contributions = []
            shared = [(slot, partial) for slot, partial in zip(instr.inputs, partials)
                      if batched.is_batch[instr.slot] and not batched.is_batch[slot]]
            if len(shared) == 1:  # a value shared by the batch, used by per-example nodes
                contributions.append((shared[0][0], f"_total({shared[0][1]}, {upstream})"))
            elif shared:  # several: one matrix-vector product sums them all over the batch
                totals = [f"t{i}" for i in range(len(shared))]
                body.append(f"{', '.join(totals)}, = _totals(({', '.join(p for _, p in shared)},), {upstream})")
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
        leaf_grads = [f"g_{names[s]}" if s in assigned else "0.0" for s in range(tape.first_interior)]
        inputs_grads = ", ".join(leaf_grads[: tape.n_inputs])
        params_grads = ", ".join(leaf_grads[tape.n_inputs :])
        body.append(f"return outputs, [{inputs_grads}], ({params_grads}{',' if params_grads else ''})")
        header = [
            f"# Batched replay of {tape.name}: inputs x are arrays (one value per example), "
            f"parameters p are shared scalars.",
            "def forward_backward(inputs, parameters, upstream, size):",
        ]
        return "\n".join(header + ["    " + line for line in body]) + "\n"

    def _guard_lines(self, indices) -> list[str]:
        lines = []
        for index in indices:
            guard = self.tape.guards[index]
            left = self.names[guard.left]
            right = self.names[guard.right] if guard.right_is_slot else _literal(guard.right, self.globals)
            test = f"({left} {guard.symbol} {right})"
            condition = f"not np.all{test}" if guard.result else f"np.any{test}"
            lines.append(f"if {condition}: raise _changed({index}, {test})")
        return lines
