"""The backward pass, narrated step by step in the order it runs.

    >>> from minigrad_explain import explain
    >>> print(explain(o))            # text for a learner
    >>> explain(o).steps[3].local    # the same, as data

Each step is one use of the chain rule, ``child.grad += local * node.grad``: it names the
node passing its gradient on, the input receiving it, the op's local-derivative formula
(from the op's OpSpec) with the numbers filled in, the contribution, and the input's
gradient so far. It narrates the kernel's own backward pass (``minigrad_core.backward_steps``),
step by step as the kernel takes them, on a fresh graph, and leaves every ``.grad`` as it
found it: run ``backward()`` to fill them in.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import re
from dataclasses import dataclass, field
from typing import Any

from minigrad_core import Value, backward_steps
from minigrad_core.value import backward_lock

__all__ = ["explain", "Explanation", "Step", "node_names", "reading_order", "format_number", "WHY_TOPOLOGICAL"]

# A step repeats its node's definition ("n = a + b passes its gradient to a") only while the
# definition is short: a node with 10,000 inputs would otherwise repeat 10,000 names in each of
# its 10,000 steps. Longer ones are written out on the node's first step only.
REPEATED_DEFINITION_MAX = 80

WHY_TOPOLOGICAL = (
    "Why this order? A value's gradient is the sum of the contributions of every node that "
    "uses it (the chain rule: paths add up). A node may pass its gradient on only once that "
    "gradient is complete, that is, after every node that uses it has contributed. Visiting "
    "the nodes in reverse topological order (each node after all the nodes that use it) "
    "guarantees exactly that, so every gradient is final before it is passed on."
)

WHY_ACCUMULATE = (
    "a value used in several places receives one contribution per use, and they add up; "
    "that is why backward() does child.grad += ... and not child.grad = ..."
)


@dataclass(frozen=True)
class Step:
    """One step of the backward pass: the seed (index 0) or one use of the chain rule."""

    index: int
    kind: str  # "seed" or "contribution"
    node: int  # position in ``Explanation.order`` of the node passing its gradient on
    target: int  # position of the node receiving it (the root, for the seed)
    node_name: str
    target_name: str
    op: str = ""  # the op's name, e.g. "tanh"
    input_index: int = 0  # which input of the node the target is
    input_role: str = ""  # that input's name in the op's formulas, e.g. "x" or "b"
    formula: str = ""  # d node / d input in the op's own names, e.g. "1 - tanh(x)**2"
    formula_named: str = ""  # ... with the graph's names, e.g. "1 - tanh(n4)**2"
    formula_numbers: str = ""  # ... with the numbers, e.g. "1 - tanh(0.8814)**2"
    local: float = 1.0  # the local derivative's value
    upstream: float = 1.0  # the node's gradient, complete by now
    contribution: float = 1.0  # local * upstream
    grad_before: float = 0.0
    grad_after: float = 1.0
    repeat: int = 0  # how many contributions the target had already received
    uses: int = 1  # how many contributions the target receives in all
    lines: tuple[str, ...] = ()  # this step narrated

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def as_dict(self) -> dict[str, Any]:
        """The step as plain data (JSON-ready), its narration as ``text``."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "lines"}
        data["text"] = self.text
        return data


@dataclass
class Explanation:
    """The narrated backward pass of ``root``; ``str()`` gives the text."""

    root: Value
    order: list[Value]  # reading order (see ``reading_order``): each node after its inputs
    names: list[str]  # a name per node of ``order``: its label, or n1, n2 ...
    definitions: list[str]  # per node, how it is computed, e.g. "n3 = x1 * w1"
    steps: list[Step]
    grads: list[float]  # per node of ``order``: the gradient the pass computes
    digits: int = 4
    header: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.text

    @property
    def text(self) -> str:
        lines = list(self.header)
        lines.append("")
        lines.append("Forward pass (in reading order, each value after its inputs):")
        for node, definition in zip(self.order, self.definitions):
            lines.append(f"  {definition} = {self.number(node.data)}")
        lines.append("")
        lines.append(f"Backward pass from {ref(self.names[-1])}, in the order it runs:")
        for step in self.steps:
            lines.extend(step.lines)
        lines.append("")
        lines.append(f"Gradients (d {ref(self.names[-1])} / d value):")
        for name, grad in zip(self.names, self.grads):
            lines.append(f"  {ref(name)}.grad = {self.number(grad)}")
        return "\n".join(lines)

    def number(self, x: float) -> str:
        """``x`` with this explanation's significant digits."""
        return format_number(x, self.digits)

    def grad_of(self, node: Value) -> float:
        """The gradient this pass computes for ``node``."""
        for candidate, grad in zip(self.order, self.grads):
            if candidate is node:
                return grad
        raise KeyError(f"{node!r} is not part of the graph of {self.root!r}")

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready): nodes by their position in ``order``, steps, the why."""
        position = {id(node): i for i, node in enumerate(self.order)}
        nodes = []
        for i, node in enumerate(self.order):
            spec = node.op_spec
            inputs = [position[id(child)] for child in node._prev]
            nodes.append(
                {
                    "index": i,
                    "name": self.names[i],
                    "definition": self.definitions[i],
                    "op": spec.name if spec is not None else "",
                    "symbol": node._op,
                    "formula": spec.describe() if spec is not None else "",
                    "derivative_formula": list(spec.derivative_formula) if spec is not None else [],
                    # d node / d input k, in the graph's own names (empty where the op gives none)
                    "derivative_named": _named_derivatives(
                        node, ref(self.names[i]), [ref(self.names[j]) for j in inputs], self.digits
                    ),
                    "inputs": inputs,
                    "data": _json_number(node.data),
                    "grad": _json_number(self.grads[i]),
                }
            )
        return {
            "root": len(self.order) - 1,
            "digits": self.digits,
            "why": WHY_TOPOLOGICAL,
            "nodes": nodes,
            "steps": [
                {k: _json_number(v) if isinstance(v, float) else v for k, v in s.as_dict().items()} for s in self.steps
            ],
        }


def explain(root: Value, digits: int = 4) -> Explanation:
    """Narrate the backward pass from ``root`` (numbers shown with ``digits`` significant digits)."""
    if not isinstance(root, Value):
        raise TypeError(f"explain() takes a Value, got {root!r} of type {type(root).__name__}")
    if not (isinstance(digits, int) and 1 <= digits <= 17):
        raise ValueError(f"explain(): digits must be a whole number from 1 to 17, got {digits!r}")
    # As backward() does, pause the cyclic collector: everything made here is acyclic, and
    # tracing the whole live graph again and again while the steps pile up made a long
    # chain's explanation take time quadratic in its length.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _explain(root, digits)
    finally:
        if collecting:
            gc.enable()


def _explain(root: Value, digits: int) -> Explanation:
    order = reading_order(root)
    position = {id(node): i for i, node in enumerate(order)}
    names = node_names(order)
    fmt = lambda x: format_number(x, digits)  # noqa: E731
    definitions = [
        _definition(node, ref(names[i]), [ref(names[position[id(c)]]) for c in node._prev])
        for i, node in enumerate(order)
    ]

    uses = [0] * len(order)  # how many contributions each node will receive
    for node in order:
        if not node.is_leaf:
            for child in node._prev:
                uses[position[id(child)]] += 1

    received = [0] * len(order)
    narration = _Narration(definitions, fmt)
    root_index = len(order) - 1
    root_name = names[root_index]
    steps = [
        Step(
            index=0,
            kind="seed",
            node=root_index,
            target=root_index,
            node_name=root_name,
            target_name=root_name,
            lines=(
                f"Step 0: {ref(root_name)}.grad = 1   (d {ref(root_name)} / d {ref(root_name)} = 1: "
                f"the seed of the backward pass)",
            ),
        )
    ]
    with backward_lock:  # the kernel's pass, observed; every .grad is put back afterwards
        saved = [node.grad for node in order]
        for node in order:
            if node.is_leaf:
                node.grad = 0.0  # as on a fresh graph
        try:
            for node, partials in backward_steps(root):
                i = position[id(node)]
                if partials is None:
                    steps.append(_closure_step(len(steps), node, i, names, definitions[i], fmt))
                    continue
                _contributions(
                    node, i, partials, steps, names, position, narration, received=received, uses=uses, fmt=fmt
                )
            grads = [_as_float(node.grad) for node in order]
        finally:
            for node, grad in zip(order, saved):
                node.grad = grad
    header = [
        f"The backward pass of {definitions[-1]} = {fmt(root.data)}: "
        f"{len(order)} values, {len(steps) - 1} uses of the chain rule "
        f"(child.grad += local derivative * node.grad).",
        WHY_TOPOLOGICAL,
    ]
    return Explanation(
        root=root,
        order=order,
        names=names,
        definitions=definitions,
        steps=steps,
        grads=grads,
        digits=digits,
        header=header,
    )


def _contributions(node, i, partials, steps, names, position, narration, received, uses, fmt) -> None:
    """One kernel step: a Step per input of ``node``, with the grads as the kernel has them."""
    spec, children = node.op_spec, node._prev
    child_names = [ref(names[position[id(c)]]) for c in children]
    # d node / d input per input: the op's formula, with the graph's names, with the numbers
    named = _derivative_forms(node, ref(names[i]), child_names, fmt)
    numbered = _derivative_forms(node, fmt(node.data), [fmt(c.data) for c in children], fmt)
    repeated = _repeated_inputs(children)
    upstream = _as_float(node.grad)
    running: dict[int, float] = {}  # an input used twice by this node receives both contributions in turn
    for k, (child, local) in enumerate(zip(children, partials)):
        local = _as_float(local)
        j = position[id(child)]
        before = running.get(j, _as_float(child.grad))
        contribution = local * upstream
        running[j] = after = before + contribution
        role, formula, formula_named = named[k] if named else ("", "", "")
        step = Step(
            index=len(steps),
            kind="contribution",
            node=i,
            target=j,
            node_name=names[i],
            target_name=names[j],
            op=spec.name,
            input_index=k,
            input_role=role,
            formula=formula,
            formula_named=formula_named,
            formula_numbers=numbered[k][2] if numbered else "",
            local=local,
            upstream=upstream,
            contribution=contribution,
            grad_before=before,
            grad_after=after,
            repeat=received[j],
            uses=uses[j],
        )
        received[j] += 1
        steps.append(narration.narrate(step, k, len(children), id(child) in repeated))


def _derivative_forms(node: Value, out: str, inputs: list[str], fmt) -> list[tuple[str, str, str]]:
    """Per input of ``node``: (its name in the op's formulas, d out / d it in the op's names,
    the same with ``inputs``, ``out`` and the parameters filled in). Empty when the op's
    formulas do not say which input is which. Linear in the number of inputs."""
    spec = node.op_spec
    if spec is None:
        return []
    formulas = tuple(spec.derivative_formula)
    if not formulas:
        return []
    shared = {"out": out}  # what every formula of this node may mention
    for p, value in node.op_params.items():
        shared[p] = fmt(value) if isinstance(value, float) else str(value)
    layout = _input_layout(spec, len(inputs))
    if layout is None:
        if spec.arity is None and len(formulas) == 1:  # one rule for every input of a variadic op
            form = ("", formulas[0], substitute(formulas[0], shared))
            return [form] * len(inputs)
        return []
    names = spec.input_names
    if len(formulas) != len(names):
        return []
    where = {}  # (name index, member) -> position among the inputs
    for position, (k, member) in enumerate(layout):
        where[k, member] = position
        if not _repeats(names[k]):
            shared[names[k]] = inputs[position]
    repeated = [k for k, name in enumerate(names) if _repeats(name)]
    forms = []
    for k, member in layout:
        values = shared
        if repeated:  # w_i and x_i stand for this input's own w and x
            values = {**shared, **{names[r]: inputs[where[r, member]] for r in repeated}}
        role = names[k] if not _repeats(names[k]) else f"{names[k][:-2]}_{member + 1}"
        forms.append((role, formulas[k], substitute(formulas[k], values)))
    return forms


def _input_layout(spec, n_inputs: int) -> list[tuple[int, int]] | None:
    """Which of the op's input names each input has, as (name index, member). A variadic op
    may name a repeated group with a trailing "_i": weighted_sum's inputs (w_i, x_i, b) are
    w_1..w_n, x_1..x_n, b. None when the names do not fit the inputs."""
    names = spec.input_names
    if spec.arity is not None:
        return [(k, 0) for k in range(n_inputs)] if len(names) == n_inputs else None
    groups = [name for name in names if _repeats(name)]
    if not groups:
        return None
    n, rest = divmod(n_inputs - (len(names) - len(groups)), len(groups))
    if rest or n < 0:
        return None
    layout = []
    for k, name in enumerate(names):
        layout.extend([(k, member) for member in range(n)] if _repeats(name) else [(k, 0)])
    return layout


def _repeats(input_name: str) -> bool:
    return input_name.endswith("_i")


def _named_derivatives(node: Value, name: str, child_names: list[str], digits: int) -> list[str]:
    """``d node / d input`` for each input, written with the graph's names."""
    if node.op_spec is None or node.is_leaf:
        return []
    forms = _derivative_forms(node, name, child_names, lambda x: format_number(x, digits))
    return [named for _, _, named in forms] if forms else [""] * len(child_names)


def _repeated_inputs(children) -> set[int]:
    """The ids of inputs that a node uses more than once (``x * x``)."""
    seen: set[int] = set()
    repeated: set[int] = set()
    for child in children:
        (repeated if id(child) in seen else seen).add(id(child))
    return repeated


def _closure_step(index: int, node: Value, i: int, names, definition: str, fmt) -> Step:
    """A node made the seed's way passes its gradient on with its own _backward closure."""
    line = (
        f"Step {index}: {definition} passes its gradient ({fmt(_as_float(node.grad))}) on with its own "
        f"_backward closure (a custom rule written by hand, op {node._op!r}): its local derivatives "
        f"are whatever that function computes"
    )
    return Step(
        index=index,
        kind="closure",
        node=i,
        target=i,
        node_name=names[i],
        target_name=names[i],
        op=node._op,
        upstream=_as_float(node.grad),
        lines=(line,),
    )


# -- order, naming and formulas ---------------------------------------------------------------


def reading_order(root: Value) -> list[Value]:
    """Every node ``root`` depends on, in the order a person reads the expression.

    Depth-first, each node after its inputs, the inputs in their argument order: for
    ``x1*w1 + x2*w2`` that is x1, w1, x1*w1, x2, w2, x2*w2, then the sum. It is a topological
    order (each node after all of its inputs), so automatic names n1, n2 ... follow the text.
    Iterative: a chain of any depth needs no recursion.
    """
    order: list[Value] = []
    seen: set[int] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        # pushed last-first, so the first argument is read first
        stack.extend((child, False) for child in reversed(node._prev) if id(child) not in seen)
    return order


def node_names(order: list[Value]) -> list[str]:
    """A readable name per node: its label, or n1, n2 ... in order (give ``reading_order``
    for names that follow the text); repeated labels get #2, #3."""
    labels = {node.label for node in order if node.label}
    names: list[str] = []
    seen: dict[str, int] = {}
    counter = 0
    for node in order:
        if node.label:
            seen[node.label] = seen.get(node.label, 0) + 1
            names.append(node.label if seen[node.label] == 1 else f"{node.label}#{seen[node.label]}")
            continue
        counter += 1
        while f"n{counter}" in labels:
            counter += 1
        names.append(f"n{counter}")
    return names


def ref(name: str) -> str:
    """A node's name as it reads inside a sentence: labels like 'x1*w1 + b' get parentheses."""
    return name if _PLAIN_NAME.fullmatch(name) else f"({name})"


_PLAIN_NAME = re.compile(r"[\w.#']+")


def format_number(x: float, digits: int = 4) -> str:
    """``x`` (a number or a Value's data) with ``digits`` significant digits; 0 is never "-0"."""
    if isinstance(x, Value):
        x = x.data
    if x == 0:
        return "0"  # never "-0"
    return f"{x:.{digits}g}"


_IDENTIFIER = re.compile(r"\b[A-Za-z_]\w*\b(?!\s*\()")  # a name that is not a function call


def substitute(template: str, values: dict[str, str]) -> str:
    """Replace the names in a formula (not the functions it calls) by text: numbers or names.

    A negative number gets parentheses unless it already sits alone in them or opens the
    formula: ``b * a ** (b - 1)`` with a=2, b=-3 reads ``-3 * 2 ** ((-3) - 1)``.
    """

    def replace(match: re.Match) -> str:
        name = match.group(0)
        if name not in values:
            return name
        text = values[name]
        if text.startswith("-"):
            before = template[: match.start()].rstrip()
            after = template[match.end() :].lstrip()
            alone = before.endswith(("(", ",")) and after.startswith((")", ","))
            if not (alone or (before == "" and not after.startswith("**"))):
                text = f"({text})"
        return text

    return _IDENTIFIER.sub(replace, template)


def _roles(spec, n_inputs: int) -> tuple[str, ...]:
    """The op's own names for its inputs, when it has a fixed number of them."""
    names = spec.input_names
    return tuple(names) if spec.arity is not None and len(names) == n_inputs else ()


def _definition(node: Value, name: str, child_names: list[str]) -> str:
    spec = node.op_spec
    if node.is_leaf:
        return name
    if spec is None:  # a node made by hand, with a closure
        return f"{name} = {node._op}({', '.join(child_names)})"
    roles = _roles(spec, len(child_names))
    if spec.formula and roles:
        values = dict(zip(roles, child_names))
        values.update({p: format_number(v) if isinstance(v, float) else str(v) for p, v in node.op_params.items()})
        return f"{name} = {substitute(spec.formula, values)}"
    params = [f"{p}={v}" for p, v in node.op_params.items()]
    return f"{name} = {spec.name}({', '.join(child_names + params)})"


def _as_float(x) -> float:
    return x.data if isinstance(x, Value) else float(x)


def _json_number(x):
    # JSON has no inf or nan: keep them readable as text
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


class _Narration:
    """Turns Steps into text; remembers what it has said (linear in the number of steps)."""

    def __init__(self, definitions: list[str], fmt):
        self.definitions, self.fmt = definitions, fmt
        self.defined: set[int] = set()  # nodes whose definition a step has written out
        self.accumulation_explained = False

    def narrate(self, step: Step, k: int, n_inputs: int, repeated_input: bool) -> Step:
        fmt = self.fmt
        node, target = ref(step.node_name), ref(step.target_name)
        definition = self.definitions[step.node]
        if len(definition) > REPEATED_DEFINITION_MAX and step.node in self.defined:
            definition = node  # written out at this node's first step
        self.defined.add(step.node)
        # which input, only when the name alone does not say it (x * x)
        which = f" (as its input {k + 1} of {n_inputs})" if repeated_input else ""
        lines = [f"Step {step.index}: {definition} passes its gradient to {target}{which}"]
        term = lambda x: f"({fmt(x)})" if fmt(x).startswith("-") else fmt(x)  # noqa: E731
        # the formula with the graph's own names, then with the numbers: the op's generic
        # input names ("b" for mul's second input) would clash with the learner's
        chain = [f"d {node} / d {target}"]
        for form in (step.formula_named, step.formula_numbers):
            if form and form != chain[-1]:
                chain.append(form)
        if fmt(step.local) != chain[-1]:
            chain.append(fmt(step.local))
        lines.append("  local derivative:  " + " = ".join(chain))
        lines.append(
            f"  contribution:      {fmt(step.local)} * {node}.grad ({fmt(step.upstream)}) = {fmt(step.contribution)}"
        )
        if step.repeat == 0:
            lines.append(
                f"  {target}.grad = {fmt(step.grad_before)} + {term(step.contribution)} = "
                f"{fmt(step.grad_after)}" + (f"   (first of {step.uses} contributions)" if step.uses > 1 else "")
            )
        else:
            why = "" if self.accumulation_explained else f": {WHY_ACCUMULATE}"
            self.accumulation_explained = True
            lines.append(
                f"  {target}.grad += {fmt(step.contribution)}  ->  {fmt(step.grad_before)} + "
                f"{term(step.contribution)} = {fmt(step.grad_after)}"
            )
            lines.append(f"  (contribution {step.repeat + 1} of {step.uses} to {target}.grad{why})")
        return dataclasses.replace(step, lines=tuple(lines))
