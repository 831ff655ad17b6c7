"""A quick timing comparison (not a test): one training step of a small MLP, eager vs replay.

    python plugins/minigrad_replay/benchmarks/timing.py [--samples 64] [--hidden 16 16] [--repeats 15]

Prints the median time per step of: eager (build the graph from Values, then backward()),
scalar replay (``record`` once, then ``tape.backward``), the ``batched`` engine (the whole
graph with numpy, level by level), batched replay (one example's graph over the batch,
plus a replay of the L2 term), the ``lifted`` engine (the whole graph, its weighted sums as
matrix products) and lifted replay (``record_batch(..., lift=True)``). The replays' numbers
are checked against eager's first.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import minigrad_nn
from minigrad_core import Value
from minigrad_nn import losses
from minigrad_replay import BatchedRecorder, LiftedRecorder, record, record_batch

ALPHA = 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[16, 16])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    X, labels = minigrad_nn.datasets.make_moons(args.samples, noise=0.1, seed=3)
    rows, y = X.tolist(), (2.0 * labels - 1.0).tolist()
    minigrad_nn.seed(11)
    model = minigrad_nn.MLP(2, [*args.hidden, 1], nonlin="relu", out_nonlin=None)
    params = model.parameters()

    def loss_fn(inputs):
        return losses.hinge([model(x) for x in inputs], y) + losses.l2(params, ALPHA)

    def zero():
        for p in params:
            p.grad = 0.0

    def eager():
        zero()
        loss = loss_fn([[Value(v) for v in row] for row in rows])
        loss.backward()
        return loss.data

    t0 = time.perf_counter()
    tape = record(loss_fn, rows)
    record_time = time.perf_counter() - t0
    engine = BatchedRecorder(loss_fn)
    lifted_engine = LiftedRecorder(loss_fn)
    per_example = record_batch(lambda x, t: losses.hinge([model(x)], [t]), rows[0], y[0])
    lifted = record_batch(
        lambda x, t: losses.hinge([model(x)], [t]) + losses.l2(params, ALPHA), rows[0], y[0], lift=True
    )
    regularizer = record(lambda: losses.l2(params, ALPHA))

    def replay():
        zero()
        return tape.backward(rows)

    def batched_engine():
        zero()
        return engine.backward(rows)

    def batched_replay():
        zero()
        return per_example.backward(X, 2.0 * labels - 1.0) + regularizer.backward()

    def lifted_engine_step():
        zero()
        return lifted_engine.backward(rows)

    def lifted_replay():  # the L2 term inside each example's loss: mean(loss_i + L2) = mean(loss_i) + L2
        zero()
        return lifted.backward(X, 2.0 * labels - 1.0)

    engines = {
        "eager": eager,
        "replay": replay,
        "batched engine": batched_engine,
        "batched replay": batched_replay,
        "lifted engine": lifted_engine_step,
        "lifted replay": lifted_replay,
    }
    reference = eager()
    reference_grads = [p.grad for p in params]
    for name, step in engines.items():
        loss = step()
        grads = [p.grad for p in params]
        if name == "replay":
            assert loss == reference and grads == reference_grads, "replay differs from eager"
        else:
            assert abs(loss - reference) <= 1e-12, f"{name}: loss differs from eager's"
            assert max(abs(a - b) for a, b in zip(grads, reference_grads)) <= 1e-12, f"{name}: grads differ"

    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(args.repeats):  # take turns, so a slow moment hits every engine alike
        for name, step in engines.items():
            gc.collect()
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    print(
        f"MLP 2-{'-'.join(map(str, args.hidden))}-1, {args.samples} examples, hinge + L2: "
        f"{len(tape.instructions)} nodes, {len(params)} parameters; recording took {record_time * 1e3:.1f} ms"
    )
    for name, median in medians.items():
        print(f"  {name:15s} {median * 1e3:8.2f} ms/step   eager / {name}: {medians['eager'] / median:5.2f}x")


if __name__ == "__main__":
    main()
