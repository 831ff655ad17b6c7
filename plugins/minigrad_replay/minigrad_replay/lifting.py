"""Lifting: a recorded graph's structure turned into array code.

The recorded graph of one example says exactly which numbers are multiplied and added. A
neuron's pre-activation is a *weighted sum*, Σ w_i * x_i + b, whether it was recorded as
one fused ``weighted_sum`` node or, the lecture's way, as a chain of ``*`` and ``+`` nodes
(``sum((wi * xi for wi, xi in zip(w, x)), b)``). Weighted sums that read the same inputs x
with their own weights w are one matrix product, Z = W @ X; the same op applied to every
output of such a group is one array operation. Nothing here knows about neurons or MLPs:
the structure is found in the graph.

    sums      every weighted sum in the graph: a fused node, or a tree of ``+`` nodes whose
              leaves are ``*`` nodes (the terms w * x) and other values (added as they are);
              the inner ``+`` and ``*`` nodes, used by nothing else, disappear into it
    levels    a node's level is one more than its inputs' highest, so the nodes of one level
              depend only on earlier levels
    groups    per level: the sums over one input vector (a matrix product), or the nodes of
              one op (one array operation). Everything else is a group too: an op whose rules
              do not run on arrays is evaluated one example at a time, as in batched replay.

Values live in two arrays: ``V``, one row per value that depends on the example (a column
per example), and ``P``, one entry per value shared by the whole batch (the parameters,
constants, and what is computed from them alone). A group's outputs get consecutive rows,
in the order the next group reads them, so most inputs are read as slices, not copies.
The backward pass runs the groups in reverse: for a matrix product, dX = Wᵀ @ dZ and
dW = dZ @ Xᵀ (summed over the batch); for an op, each input gets partial * upstream.

Sums are added in another order than eager's (a matrix product adds its terms its own
way), so the numbers equal eager's up to rounding.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minigrad_core import COMPARE, evaluate, local_derivatives

__all__ = ["LiftedProgram", "find_sums"]


# ---------------------------------------------------------------------------------------------
# Finding the weighted sums in a graph
# ---------------------------------------------------------------------------------------------


@dataclass
class WeightedSum:
    """A value of the graph that is Σ w_i * x_i + Σ extras (``slot`` holds it)."""

    slot: int
    ws: tuple  # the slots multiplied ...
    xs: tuple  # ... pairwise with these
    extras: tuple  # the slots added as they are (a bias; a sum of exps)
    absorbed: tuple = ()  # the inner + and * nodes it replaces


def _probe(spec, inputs, expected_out, expected_partials) -> bool:
    """Whether an op computes what its name suggests, checked on a few numbers (an op found by
    name must also behave as that op before its nodes are rearranged)."""
    try:
        out = evaluate(spec, inputs)
        partials = local_derivatives(spec, inputs, out)
    except Exception:
        return False
    return out == expected_out and tuple(partials) == expected_partials


def _is_op(spec, name: str, cache: dict) -> bool:
    key = (id(spec), name)
    if key not in cache:
        probes = {
            "add": ((2.0, 3.0), 5.0, (1.0, 1.0)),
            "mul": ((2.0, 3.0), 6.0, (3.0, 2.0)),
            # weighted_sum(w1, w2, x1, x2, b) = w1*x1 + w2*x2 + b
            "weighted_sum": ((2.0, 3.0, 5.0, 7.0, 11.0), 42.0, (5.0, 7.0, 2.0, 3.0, 1.0)),
        }
        cache[key] = spec.name == name and _probe(spec, *probes[name])
    return cache[key]


def find_sums(tape, is_batch: list) -> dict:
    """slot -> WeightedSum for every weighted sum found in ``tape``'s graph.

    A sum qualifies when all its weights are alike (all shared by the batch, or all per
    example), and so are all its x's; each term is turned so that, where one of its two
    factors is shared and the other is not, the shared one is the weight. Inner nodes must
    be used only inside the sum (not by another node, an output or a comparison)."""
    instructions = {instr.slot: instr for instr in tape.instructions}
    # how many nodes use each slot, and (where one does) which: counted with numpy, as a whole
    # data set's graph has millions of edges
    arity = np.fromiter((len(instr.inputs) for instr in tape.instructions), np.intp, len(tape.instructions))
    edges = np.fromiter(
        itertools.chain.from_iterable(instr.inputs for instr in tape.instructions), np.intp, int(arity.sum())
    )
    owners = np.repeat(np.array([instr.slot for instr in tape.instructions], dtype=np.intp), arity)
    users = np.bincount(edges, minlength=tape.n_slots).tolist()
    user_array = np.full(tape.n_slots, -1, dtype=np.intp)
    user_array[edges] = owners  # meaningful where a slot has one user
    user = user_array.tolist()
    pinned = {slot for is_slot, slot in tape.outputs if is_slot}
    for guard in tape.guards:
        pinned.add(guard.left)
        if guard.right_is_slot:
            pinned.add(guard.right)
    cache: dict = {}

    def plain(slot, name, arity):
        instr = instructions.get(slot)
        return instr is not None and len(instr.inputs) == arity and not instr.params and _is_op(instr.spec, name, cache)

    def inner(slot) -> bool:  # used once, by nothing but the + above it
        return users[slot] == 1 and slot not in pinned

    sums: dict = {}
    for instr in tape.instructions:
        slot, inputs = instr.slot, instr.inputs
        absorbed: list = []
        if len(inputs) >= 3 and len(inputs) % 2 and not instr.params and _is_op(instr.spec, "weighted_sum", cache):
            n = len(inputs) // 2
            ws, xs, extras = inputs[:n], inputs[n : 2 * n], [inputs[-1]]
        elif plain(slot, "add", 2) and not (inner(slot) and plain(user[slot], "add", 2)):
            leaves, stack = [], [slot]  # the + tree under this root, its leaves left to right
            while stack:
                current = stack.pop()
                if current == slot or (plain(current, "add", 2) and inner(current)):
                    if current != slot:
                        absorbed.append(current)
                    stack.extend(reversed(instructions[current].inputs))
                else:
                    leaves.append(current)
            pairs, extras = [], []
            for leaf in leaves:
                if plain(leaf, "mul", 2) and inner(leaf):
                    pairs.append(instructions[leaf].inputs)
                    absorbed.append(leaf)
                else:
                    extras.append(leaf)
            if not pairs and len(absorbed) < 1:
                continue  # a single a + b: an ordinary op
            ws, xs = (tuple(w for w, _ in pairs), tuple(x for _, x in pairs)) if pairs else ((), ())
        else:
            continue
        batch_of = is_batch.__getitem__
        w_kinds, x_kinds = set(map(batch_of, ws)), set(map(batch_of, xs))
        if w_kinds == {True} and x_kinds == {False}:
            ws, xs = xs, ws  # the shared factor is the weight
        elif len(w_kinds) > 1 or len(x_kinds) > 1:  # turn each term so that its shared factor is the weight
            pairs = [(x, w) if is_batch[w] and not is_batch[x] else (w, x) for w, x in zip(ws, xs)]
            ws, xs = tuple(w for w, _ in pairs), tuple(x for _, x in pairs)
            if len(set(map(batch_of, ws))) > 1 or len(set(map(batch_of, xs))) > 1:
                continue  # weights (or x's) of both kinds: not one array of each
        sums[slot] = WeightedSum(slot, tuple(ws), tuple(xs), tuple(extras), tuple(absorbed))
    # every inner node belongs to one sum (it has one user); should two claim one, the later gives way
    taken: set = set()
    for found in list(sums.values()):
        if taken.intersection(found.absorbed):
            del sums[found.slot]
            continue
        taken.update(found.absorbed)
    return sums


# ---------------------------------------------------------------------------------------------
# Where values live: rows of V (per example) or entries of P (shared)
# ---------------------------------------------------------------------------------------------


class _Index:
    """Positions in V or P (or columns of an argument), read as a slice when they are consecutive."""

    def __init__(self, positions):
        positions = np.asarray(positions, dtype=np.intp)
        self.shape = positions.shape
        flat = positions.ravel()
        self.array = positions
        self.size = flat.size
        self.start = None
        if flat.size and flat[-1] - flat[0] == flat.size - 1 and np.all(np.diff(flat) == 1):
            self.start = int(flat[0])
        self.unique = self.start is not None or len(np.unique(flat)) == flat.size


@dataclass
class _Input:
    """Values a group reads: their slots, whether they are per example, and (once the
    program is planned) where they are."""

    slots: np.ndarray
    batch: bool
    # set when the program is planned (Any: unset until then)
    index: Any = None  # where to read them: an _Index in V or P, or of columns of argument ``arg``
    grad_index: Any = None  # where their gradients go: an _Index in GV or GP
    arg: int | None = None


@dataclass
class _Group:
    kind: str  # "op", "rows" (W @ X), "outer" (X @ Wᵀ, whole-graph mode) or "sums"
    out: _Index
    batch: bool  # whether the outputs are per example (rows of V)
    needs_grad: bool
    spec: Any = None  # "op": the OpSpec, its parameters, its _BatchRule
    params: dict | None = None
    rule: Any = None
    inputs: list = field(default_factory=list)  # "op": one _Input per position
    w: Any = None  # the sums: _Inputs of the weights, x's, shared and per-example extras
    x: Any = None
    shared_extras: Any = None
    batch_extras: Any = None
    rows_cols: tuple = ()  # "outer": (r, c)


class CannotLift(Exception):
    """The graph has a shape lifting does not handle (e.g. the loss is a leaf)."""


class LiftedProgram:
    """A tape's graph as array code: matrix products for weighted sums, one array operation
    for each op's nodes at one level.

    ``is_batch[slot]``: whether the value depends on the example. Per-example mode
    (``whole_graph=False``, batched replay): V has a column per example. Whole-graph mode
    (the ``lifted`` engine: one graph for the whole data set, one column): the sums that
    read different x's with the same weights form one product X @ Wᵀ, one row per x.
    """

    def __init__(
        self,
        tape,
        is_batch: list,
        rules: dict,
        make_rule: Callable,
        whole_graph: bool,
        input_layout: list | None = None,
    ):
        self.tape = tape
        self.whole_graph = whole_graph
        # per input: (argument, column) where the run finds it
        self.input_layout = input_layout or [(0, i) for i in range(tape.n_inputs)]
        self.n_args = 1 + max((arg for arg, _ in self.input_layout), default=0)
        self.inputs_in_V = False  # whether some read mixes inputs and computed values
        self._functions: dict = {}
        self._pool: list = []
        self._pool_lock = threading.Lock()
        if tape.loss is not None and tape.loss < tape.first_interior:
            raise CannotLift("the loss is a leaf")
        self.sums = sums = find_sums(tape, is_batch)
        absorbed = {slot for found in sums.values() for slot in found.absorbed}
        self.absorbed_nodes = len(absorbed)
        level = [0] * tape.n_slots
        nodes = []  # (slot, instr or WeightedSum, an op's inputs)
        for instr in tape.instructions:
            if instr.slot in absorbed:
                continue
            found = sums.get(instr.slot)
            level_of = level.__getitem__
            if found is None:
                level[instr.slot] = 1 + max(map(level_of, instr.inputs), default=0)
                nodes.append((instr.slot, instr, instr.inputs))
            else:  # a sum's inputs are read from the sum itself
                level[instr.slot] = 1 + max(
                    max(map(level_of, part), default=0) for part in (found.ws, found.xs, found.extras)
                )
                nodes.append((instr.slot, found, ()))
        # rows of V and entries of P, filled group by group; the parameters are placed last,
        # in the order the matrix products read them (so a weight matrix is a slice of P)
        self.is_batch = is_batch
        self.where: dict[int, tuple[bool, int]] = {slot: (True, slot) for slot in range(tape.n_inputs)}
        self.n_rows, self.n_shared = tape.n_inputs, len(tape.params)
        self.rank = self._ranks(nodes, is_batch)
        grouped: dict[tuple, list] = {}
        for slot, node, inputs in nodes:
            key: tuple
            if isinstance(node, WeightedSum):
                key = (
                    level[slot],
                    "sums",
                    len(node.ws),
                    len(node.extras),
                    bool(node.ws) and is_batch[node.ws[0]],
                    bool(node.xs) and is_batch[node.xs[0]],
                    tuple(is_batch[e] for e in node.extras),
                )
            else:
                key = (
                    level[slot],
                    "op",
                    id(node.spec),
                    len(inputs),
                    _params_key(node.params or {}),
                    tuple(is_batch[i] for i in inputs),
                )
            grouped.setdefault(key, []).append((slot, node, inputs))
        needs = tape._needs_grad
        self.groups: list[_Group] = []
        for key in sorted(grouped, key=lambda k: k[0]):  # stable: first seen first within a level
            members = grouped[key]
            if key[1] == "op":
                if id(members[0][1].spec) not in rules:
                    rules[id(members[0][1].spec)] = make_rule(members[0][1].spec)
                self._op_group(members, is_batch, rules[id(members[0][1].spec)], needs)
            else:
                self._sum_groups(members, is_batch, needs)
        self._place_parameters()
        self.guards = [(index, guard) for index, guard in enumerate(tape.guards)]

    @staticmethod
    def _ranks(nodes, is_batch) -> dict:
        """Where each value is wanted: its place in the input vector of the first weighted sum
        that reads it (and, through ops of one input vector such as relu, of what they read).
        Outputs of a group are laid out in this order, so the next product reads a slice."""
        rank: dict = {}
        seen: set = set()  # input vectors already ranked (the neurons of a layer share one)
        for order, (_, node, _) in enumerate(nodes):
            if isinstance(node, WeightedSum) and node.xs not in seen:
                seen.add(node.xs)
                for j, x in enumerate(node.xs):
                    rank.setdefault(x, (order, j))
        for slot, node, inputs in reversed(nodes):
            if slot in rank and not isinstance(node, WeightedSum):  # an op passes its place on
                for i in inputs:
                    if is_batch[i]:
                        rank.setdefault(i, rank[slot])
        return rank

    def _place_parameters(self) -> None:
        """Positions in P for the parameters: the weights of each matrix product row by row,
        then its biases, then the rest in the order they are read; then every read is resolved."""
        tape = self.tape
        self.parameter_order: list[int] = []  # P[k] holds tape.params[parameter_order[k]]

        def place(slots) -> None:
            for slot in np.ravel(slots).tolist():
                if slot not in self.where and tape.n_inputs <= slot < tape.first_interior:
                    self.where[slot] = (False, len(self.parameter_order))
                    self.parameter_order.append(slot - tape.n_inputs)

        reads = []
        for group in self.groups:
            items = [*group.inputs, group.w, group.x, group.shared_extras, group.batch_extras]
            reads += [item for item in items if item is not None]
            if group.kind in ("rows", "outer"):
                place(group.w.slots)
                if group.shared_extras is not None:
                    place(group.shared_extras.slots)
        for item in reads:
            place(item.slots)
        place(range(tape.n_inputs, tape.first_interior))
        layout = self.input_layout
        for item in reads:
            slots = item.slots.ravel().tolist()
            shape = item.slots.shape
            item.grad_index = _Index(np.array([self.where[s][1] for s in slots], dtype=np.intp).reshape(shape))
            item.index = item.grad_index
            if item.batch and all(s < tape.n_inputs for s in slots):
                if len({layout[s][0] for s in slots}) == 1:  # columns of one argument, read in place
                    item.arg = layout[slots[0]][0]
                    item.index = _Index(np.array([layout[s][1] for s in slots], dtype=np.intp).reshape(shape))
                else:
                    self.inputs_in_V = True
            elif item.batch and any(s < tape.n_inputs for s in slots):
                self.inputs_in_V = True

    # -- planning --------------------------------------------------------------------------
    def _place(self, slots: list, batch: bool) -> _Index:
        """Consecutive positions for ``slots`` (in this order) in V or P."""
        start = self.n_rows if batch else self.n_shared
        for k, slot in enumerate(slots):
            self.where[slot] = (batch, start + k)
        if batch:
            self.n_rows += len(slots)
        else:
            self.n_shared += len(slots)
        return _Index(np.arange(start, start + len(slots)))

    def _input(self, slots) -> _Input:
        slots = np.array(slots, dtype=np.intp)
        return _Input(slots, bool(self.is_batch[int(slots.ravel()[0])]))

    def _position(self, slot) -> float:
        batch, position = self.where.get(slot, (False, -1))
        return position if batch else -1

    def _ranked(self, slot):
        return self.rank.get(slot, (float("inf"), 0))

    def _op_group(self, members, is_batch, rule, needs) -> None:
        # read in the order of the first per-example input, so inputs made by one group and
        # read by the next come as a slice
        members = sorted(
            members,
            key=lambda m: (min((self._position(i) for i in m[2] if is_batch[i]), default=0), self._ranked(m[0])),
        )
        slots = [m[0] for m in members]
        arity = len(members[0][2])
        inputs = [self._input([m[2][j] for m in members]) for j in range(arity)]
        batch = any(is_batch[i] for i in members[0][2])
        node = members[0][1]
        self.groups.append(
            _Group(
                "op",
                self._place(slots, batch),
                batch,
                any(needs[s] for s in slots),
                spec=node.spec,
                params=node.params,
                rule=rule,
                inputs=inputs,
            )
        )

    def _sum_groups(self, members, is_batch, needs) -> None:
        first: WeightedSum = members[0][1]
        w_batch = bool(first.ws) and is_batch[first.ws[0]]
        x_batch = bool(first.xs) and is_batch[first.xs[0]]
        if first.ws and not w_batch and x_batch:
            by_x: dict[tuple, list] = {}
            for member in members:
                by_x.setdefault(member[1].xs, []).append(member)
            if self.whole_graph and len(by_x) > 1 and self._outer_group(by_x, is_batch, needs):
                return
            for same_x in by_x.values():  # W @ X for each input vector
                self._sums_group("rows", sorted(same_x, key=lambda m: self._ranked(m[0])), is_batch, needs)
            return
        self._sums_group("sums", members, is_batch, needs)

    def _outer_group(self, by_x: dict, is_batch, needs) -> bool:
        """Whole-graph mode: r input vectors, each read by the same c weight vectors: one
        product X @ Wᵀ (r x c). False when the sums do not form that full grid."""
        rows = sorted(by_x, key=lambda xs: self._position(xs[0]))
        weights: dict[tuple, int] = {}
        for member in sorted(by_x[rows[0]], key=lambda m: self._ranked(m[0])):
            weights.setdefault(member[1].ws, len(weights))
        grid = []
        for xs in rows:
            cells = {member[1].ws: member for member in by_x[xs]}
            if len(cells) != len(weights) or len(by_x[xs]) != len(weights):
                return False
            grid += [cells[ws] for ws in weights]
        r, c = len(rows), len(weights)
        self._sums_group(
            "outer",
            grid,
            is_batch,
            needs,
            rows=[list(xs) for xs in rows],
            weights=[list(ws) for ws in weights],
            rows_cols=(r, c),
        )
        return True

    def _sums_group(self, kind, members, is_batch, needs, rows=None, weights=None, rows_cols=()) -> None:
        sums = [m[1] for m in members]
        slots = [m[0] for m in members]
        first = sums[0]
        extras_batch = [is_batch[e] for e in first.extras]
        batch = any(extras_batch) or any(is_batch[i] for i in (*first.ws[:1], *first.xs[:1]))
        group = _Group(kind, self._place(slots, batch), batch, any(needs[s] for s in slots), rows_cols=rows_cols)
        if first.ws:
            if kind == "rows":
                group.w = self._input([s.ws for s in sums])
                group.x = self._input(list(first.xs))
            elif kind == "outer":
                group.w = self._input(weights)
                group.x = self._input(rows)
            else:
                group.w = self._input([s.ws for s in sums])
                group.x = self._input([s.xs for s in sums])
        shared = [j for j, b in enumerate(extras_batch) if not b]
        per_example = [j for j, b in enumerate(extras_batch) if b]
        if shared:
            group.shared_extras = self._input([[s.extras[j] for j in shared] for s in sums])
        if per_example:
            group.batch_extras = self._input([[s.extras[j] for j in per_example] for s in sums])
        self.groups.append(group)

    # -- running ---------------------------------------------------------------------------
    def run(self, inputs: list, parameters: np.ndarray, upstream, changed: Callable, input_grads: bool = True):
        """Forward, and backward when ``upstream`` (d result / d loss per example) is given.

        ``inputs``: per argument, an array of shape (batch, its numbers); ``parameters``: the
        shared leaves in ``parameter_order``. Returns (outputs, the arguments' gradients as
        rows, one per input (None unless ``input_grads``), the gradients of the shared leaves
        in ``parameter_order``). ``changed(index, left, right)`` makes the error for a guard
        that no longer holds (checked after the forward pass, before any gradient)."""
        function = self._functions.get(input_grads)
        if function is None:
            function = self._functions[input_grads] = self._compile(input_grads)
        with np.errstate(divide="raise", over="raise", invalid="raise"):  # trouble: the caller decides
            return function(inputs, parameters, upstream, inputs[0].shape[0], changed)

    def _compile(self, input_grads: bool):
        code = _LiftedCode(self, input_grads)
        source = code.source()
        if input_grads or not self.source:
            self.source = source
        namespace = {"np": np, **code.globals}
        exec(compile(source, f"<lifted program of {self.tape.name}>", "exec"), namespace)
        return namespace["lifted"]

    def _take(self, size: int):
        """Work arrays for a batch of ``size``: reused from call to call (a fresh large array
        costs a page fault per 4 KiB when first written)."""
        with self._pool_lock:
            for k, arrays in enumerate(self._pool):
                if arrays[0].shape[1] == size:
                    return self._pool.pop(k)
        return np.empty((self.n_rows, size)), np.empty((self.n_rows, size))

    def _give(self, arrays) -> None:
        with self._pool_lock:
            self._pool[:] = [arrays]  # keep one set: the batch size rarely changes

    source = ""


class _OpCall:
    """One group's op on flat arrays (one number per element): the op's array rules straight
    away once its ``_BatchRule`` found that they work on arrays, else through that rule (which
    evaluates one element at a time where they do not)."""

    def __init__(self, group: _Group):
        self.rule, self.spec, self.params = group.rule, group.spec, group.params
        self.count = group.out.size
        self.batch = group.batch

    def forward(self, size, *inputs):
        spec, params = self.spec, self.params
        count = self.count * size if self.batch else self.count
        if not inputs:
            return np.full(count, evaluate(spec, (), params))
        if self.rule.mode["forward"] == "arrays":
            function = spec.np_forward or spec.forward
            result = function(*inputs, **params) if params else function(*inputs)
        else:
            result = self.rule.forward(inputs, params)
        if type(result) is not np.ndarray or result.shape != (count,):
            result = np.broadcast_to(np.asarray(result, dtype=float), (count,))
        return result.reshape((self.count, size) if self.batch else (self.count,))

    def derivative(self, size, inputs, out):
        spec, params = self.spec, self.params
        out = out.reshape(-1)
        if self.rule.mode["derivative"] == "arrays":
            if spec.np_derivative is not None:  # the hand-written array form, tested to equal the rule
                partials = spec.np_derivative(*inputs, out, **params) if params else spec.np_derivative(*inputs, out)
            else:  # the rule itself, called and checked by the kernel as backward() calls it
                partials = local_derivatives(spec, inputs, out, params or None)
        else:
            partials = self.rule.derivative(inputs, out, params)
        shape = (self.count, size) if self.batch else (self.count,)
        return [p.reshape(shape) if type(p) is np.ndarray and p.size == out.size and p.ndim else p for p in partials]


class _Repeated:
    """Positions some of which repeat: contributions are summed per position first."""

    def __init__(self, positions: np.ndarray):
        flat = positions.ravel()
        self.shape = positions.shape
        self.order = np.argsort(flat, kind="stable")
        ordered = flat[self.order]
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self.unique = ordered[self.starts]

    def totals(self, store, contribution):
        tail = store.shape[1:]
        spread = np.broadcast_to(contribution, self.shape + tail).reshape((-1, *tail))
        return np.add.reduceat(spread[self.order], self.starts, axis=0)


class _LiftedCode:
    """Writes a lifted program as straight-line numpy code: a line or two per group.

    Gradients are written, not added, where a position gets its first contribution (so
    the gradient arrays need no zeroing); a position read before anything was written to
    it is set to zero first."""

    def __init__(self, program: LiftedProgram, input_grads: bool):
        self.program = program
        self.input_grads = input_grads
        self.globals: dict = {}
        self.lines: list[str] = []
        self._op_names: dict[int, str] = {}
        self.written = {"GV": np.zeros(program.n_rows, bool), "GP": np.zeros(program.n_shared, bool)}
        tape = program.tape
        grad_params = set(tape._grad_params)
        self.wanted = [
            input_grads
            if slot < tape.n_inputs
            else (slot - tape.n_inputs in grad_params)
            if slot < tape.first_interior
            else tape._needs_grad[slot]
            for slot in range(tape.n_slots)
        ]

    def _global(self, base: str, value) -> str:
        name = f"_{base}{len(self.globals)}"
        self.globals[name] = value
        return name

    # reading positions of V / P (and of their gradients GV / GP), and the inputs X0, X1 ...
    def read(self, index: _Index, store: str) -> str:
        per_example = store in ("V", "GV")
        if index.start is not None:
            text = f"{store}[{index.start}:{index.start + index.size}]"
            if len(index.shape) > 1:
                text += f".reshape({', '.join(map(str, index.shape))}{', -1' if per_example else ''})"
            return text
        return f"{store}[{self._global('at', index.array)}]"

    def read_item(self, item: _Input) -> str:
        """Per-example values, shaped (positions..., batch)."""
        if item.arg is None:
            return self.read(item.index, "V")
        index, array = item.index, f"X{item.arg}"
        if index.start is not None:
            text = f"{array}[:, {index.start}:{index.start + index.size}].T"
            if len(index.shape) > 1:
                text += f".reshape({', '.join(map(str, index.shape))}, -1)"
            return text
        at = self._global("at", index.array)
        return f"{array}[:, {at}].T" if len(index.shape) == 1 else f"np.moveaxis({array}[:, {at}], 0, -1)"

    def value(self, item: _Input, group: _Group) -> str:
        """An input's values: per example, or shared (a column to spread over the batch when
        the group works per example)."""
        if item.batch:
            return self.read_item(item)
        text = self.read(item.index, "P")
        return f"{text}[..., None]" if group.batch else text

    def _ensure(self, store: str, positions) -> None:
        """Zero the positions of a gradient array that nothing has written yet."""
        positions = np.asarray(positions, dtype=np.intp).ravel()
        missing = positions[~self.written[store][positions]]
        if missing.size:
            missing = np.unique(missing)
            if missing[-1] - missing[0] == missing.size - 1:
                self.lines.append(f"{store}[{missing[0]}:{missing[-1] + 1}] = 0.0")
            else:
                self.lines.append(f"{store}[{self._global('at', missing)}] = 0.0")
            self.written[store][missing] = True

    def add(self, item: _Input, expression: str, product: tuple | None = None) -> None:
        """The gradient of ``item``'s values gets ``expression`` (their share of the chain rule).
        ``product`` (``("matmul" or "multiply", left, right)``, the same expression) lets a first
        contribution be written straight into the gradient array, without a temporary."""
        if not any(self.wanted[s] for s in item.slots.ravel().tolist()):
            return  # nothing asks for these gradients
        index = item.grad_index
        store = "GV" if item.batch else "GP"
        positions = index.array.ravel()
        fresh = not self.written[store][positions].any()
        if not fresh:
            self._ensure(store, positions)
        sign = "=" if fresh else "+="
        if not index.unique:
            repeated = _Repeated(index.array)
            if len(repeated.unique) == 1:  # every contribution goes to one position: one sum
                self.globals["_sum_to_one"] = _sum_to_one
                self.lines.append(
                    f"{store}[{int(repeated.unique[0])}] {sign} _sum_to_one({store}, {index.shape}, {expression})"
                )
            else:
                name = self._global("repeated", repeated)
                self.lines.append(f"{store}[{name}.unique] {sign} {name}.totals({store}, {expression})")
        elif index.start is not None:
            target = self.read(index, store)
            if len(index.shape) > 1:
                self.lines.append(f"_t = {target}")  # a view: writing to it writes the store
                target = "_t"
            if fresh and product is not None:
                operation, left, right = product
                self.lines.append(f"np.{operation}({left}, {right}, out={target})")
            elif target == "_t":
                self.lines.append(f"_t[...] = {expression}" if fresh else f"_t += {expression}")
            else:
                self.lines.append(f"{target} {sign} {expression}")
        else:
            self.lines.append(f"{self.read(index, store)} {sign} {expression}")
        self.written[store][positions] = True

    def source(self) -> str:
        program, tape = self.program, self.program.tape
        lines = self.lines
        lines.append("V, GV = _take(size)")
        if program.inputs_in_V:
            columns = [f"X{arg}[:, {column}]" for arg, column in program.input_layout]
            lines.append(f"V[:{tape.n_inputs}] = np.column_stack(({', '.join(columns)},)).T")
        lines.append(f"{', '.join(f'X{k}' for k in range(program.n_args))}, = inputs")
        lines.append(f"P = np.empty({program.n_shared})")
        lines.append(f"P[:{len(tape.params)}] = parameters")
        self.globals["_take"], self.globals["_give"] = program._take, program._give
        for number, group in enumerate(program.groups):
            lines.append(f"# group {number}: {self._describe(group)}")
            self.forward(group)
        if program.guards:
            self.globals["_guards"] = self._check_guards
            lines.append(f"_guards(V, P, ({', '.join(f'X{k}' for k in range(program.n_args))},), changed)")
        outputs = [repr(float(slot)) if not is_slot else self._output(slot) for is_slot, slot in tape.outputs]
        lines.append(f"outputs = [{', '.join(outputs)}]")
        lines.append("if upstream is None:")
        lines.append("    _give((V, GV))")
        lines.append("    return outputs, None, None")
        lines.append(f"GP = np.empty({program.n_shared})")
        batch, position = program.where[tape.loss]
        lines.append(f"{'GV' if batch else 'GP'}[{position}] = upstream")
        self.written["GV" if batch else "GP"][position] = True
        for number in reversed(range(len(program.groups))):
            group = program.groups[number]
            if group.needs_grad:
                lines.append(f"# group {number}, backward")
                self.backward(group)
        self._ensure("GP", range(len(tape.params)))
        if self.input_grads:
            self._ensure("GV", range(tape.n_inputs))
            lines.append(f"input_grads = GV[:{tape.n_inputs}].copy()")
        else:
            lines.append("input_grads = None")
        lines.append("_give((V, GV))")
        lines.append(f"return outputs, input_grads, GP[:{len(tape.params)}]")
        header = [
            f"# Lifted program of {tape.name}: V holds per-example values (a row each), P shared ones,",
            "# X0, X1 ... the arguments (a row per example).",
            "def lifted(inputs, parameters, upstream, size, changed):",
        ]
        return "\n".join(header + ["    " + line for line in lines]) + "\n"

    def _output(self, slot: int) -> str:
        program = self.program
        if slot < program.tape.n_inputs and not program.inputs_in_V:
            arg, column = program.input_layout[slot]
            return f"X{arg}[:, {column}].copy()"
        batch, position = program.where[slot]
        return f"V[{position}].copy()" if batch else f"float(P[{position}])"

    @staticmethod
    def _describe(group: _Group) -> str:
        if group.kind == "op":
            return f"{group.spec.name} x {group.out.size}"
        if group.kind == "rows":
            return f"{group.out.size} weighted sums of one input vector: a matrix product W @ X"
        if group.kind == "outer":
            r, c = group.rows_cols
            return f"{r} input vectors x {c} weight vectors: a matrix product X @ W.T"
        return f"{group.out.size} sums"

    def _check_guards(self, V, P, X, changed) -> None:
        program = self.program

        def value(slot):
            if slot < program.tape.n_inputs and not program.inputs_in_V:
                arg, column = program.input_layout[slot]
                return X[arg][:, column].copy()
            batch, position = program.where[slot]
            return V[position].copy() if batch else float(P[position])

        for index, guard in program.guards:
            left = value(guard.left)
            right = value(guard.right) if guard.right_is_slot else guard.right
            if not np.all(COMPARE[guard.symbol](left, right) == guard.result):
                raise changed(index, left, right)

    def _extras(self, group: _Group, shared: bool) -> str:
        item = group.shared_extras if shared else group.batch_extras
        text = self.read(item.index, "P") if shared else self.read_item(item)
        total = f"{text}[:, 0]" if item.index.shape[1] == 1 else f"{text}.sum(axis=1)"
        return f"{total}[:, None]" if shared and group.batch else total

    def forward(self, group: _Group) -> None:
        lines = self.lines
        out = self.read(group.out, "V" if group.batch else "P")
        if group.kind == "op":
            call = self._op_names[id(group)] = self._global("op", _OpCall(group))
            inputs = [self._flat_input(item, group) for item in group.inputs]
            lines.append(f"{out} = {call}.forward(size, {', '.join(inputs)})")
            return
        terms = []
        if group.kind == "rows":
            lines.append(f"np.matmul({self.read(group.w.index, 'P')}, {self.read_item(group.x)}, out={out})")
        elif group.kind == "outer":
            r, c = group.rows_cols
            x = f"{self.read_item(group.x)}[..., 0]"
            lines.append(f"{out} = ({x} @ {self.read(group.w.index, 'P')}.T).reshape({r * c}, 1)")
        elif group.w is not None:
            terms.append(f"({self.value(group.w, group)} * {self.value(group.x, group)}).sum(axis=1)")
        if group.shared_extras is not None:
            terms.append(self._extras(group, shared=True))
        if group.batch_extras is not None:
            terms.append(self._extras(group, shared=False))
        if group.kind in ("rows", "outer"):
            for term in terms:
                lines.append(f"{out} += {term}")
        else:
            lines.append(f"{out} = {' + '.join(terms)}")

    def _flat_input(self, item: _Input, group: _Group) -> str:
        """An op's input as one flat array, shaped like the group's outputs."""
        if item.batch:
            return f"{self.read_item(item)}.reshape(-1)"
        if group.batch and item.index.size == 1:  # one shared number (a constant): numpy spreads it
            return f"float(P[{int(item.index.array.ravel()[0])}])"
        text = self.read(item.index, "P")
        if group.batch:
            self.globals["_spread"] = _spread
            return f"_spread({text}, size)"
        return text

    def backward(self, group: _Group) -> None:
        lines = self.lines
        gradient_store, value_store = ("GV", "V") if group.batch else ("GP", "P")
        self._ensure(gradient_store, group.out.array)
        lines.append(f"u = {self.read(group.out, gradient_store)}")
        if group.kind == "op":
            call = self._op_names[id(group)]
            inputs = [self._flat_input(item, group) for item in group.inputs]
            lines.append(
                f"d = {call}.derivative(size, ({', '.join(inputs)}{',' if len(inputs) == 1 else ''}), "
                f"{self.read(group.out, value_store)})"
            )
            for j, item in enumerate(group.inputs):
                if group.batch and not item.batch:
                    self._pass_on(item, group, f"d[{j}] * u")
                else:
                    self.add(item, f"d[{j}] * u", ("multiply", f"d[{j}]", "u"))
            return
        if group.kind == "rows":
            w, x = self.read(group.w.index, "P"), self.read_item(group.x)
            self.add(group.x, f"{w}.T @ u", ("matmul", f"{w}.T", "u"))
            self.add(group.w, f"u @ {x}.T", ("matmul", "u", f"{x}.T"))  # summed over the batch by the product
        elif group.kind == "outer":
            r, c = group.rows_cols
            lines.append(f"u = u.reshape({r}, {c})")
            w, x = self.read(group.w.index, "P"), f"{self.read_item(group.x)}[..., 0]"
            self.add(group.x, f"(u @ {w})[..., None]")
            self.add(group.w, f"u.T @ {x}")
            lines.append("u = u.reshape(-1, 1)")
        elif group.w is not None:
            lines.append("s = u[:, None]")
            self._pass_on(group.w, group, f"{self.value(group.x, group)} * s")
            self._pass_on(group.x, group, f"{self.value(group.w, group)} * s")
        if group.shared_extras is not None:
            total = "u.sum(axis=1)" if group.batch else "u"
            self.add(group.shared_extras, f"{total}[:, None]")
        if group.batch_extras is not None:
            self.add(group.batch_extras, "u[:, None]")

    def _pass_on(self, item: _Input, group: _Group, contribution: str) -> None:
        """Add ``contribution`` to the input's gradient (summed over the batch for a shared input)."""
        if group.batch and not item.batch:
            contribution = f"({contribution}).sum(axis=-1)"
        self.add(item, contribution)


def _sum_to_one(store, shape: tuple, contribution):
    """All of ``contribution`` (shaped like positions ``shape`` of ``store``) summed into one."""
    tail = store.shape[1:]
    return np.broadcast_to(contribution, shape + tail).reshape((-1, *tail)).sum(axis=0)


def _spread(shared, size: int):
    """Shared values, one per node of a group, repeated for every example (flat)."""
    return np.repeat(shared, size)


def _params_key(params: dict):
    try:
        key = tuple(sorted(params.items()))
        hash(key)
        return key
    except TypeError:
        return ("id", id(params))
