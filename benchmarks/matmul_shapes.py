"""GFLOP/s of TensorFlow's float32 matmul at the shapes of one encoder training step.

A training step multiplies, for every dense projection (tokens x in -> out), the
forward `X @ W`, the input gradient `dY @ W^T` and the weight gradient `X^T @ dY`.
This script times each of those shapes alone (20 products run one after
the other in one `tf.function`, best of 5) next to a large square matmul, so that a step's model
GFLOP/s (benchmarks/peers_train_step.py) can be read against what the kernels give:

    python benchmarks/matmul_shapes.py --preset albert_base --batch 8 --seq 128
    python benchmarks/matmul_shapes.py --xla     # the same under jit_compile=True
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def shapes(config, tokens):
    """(name, rows, inner, columns, transpose_a, transpose_b) of the step's products."""
    hidden = config["hidden_dim"]
    intermediate = config.get("intermediate_dim") or 4 * hidden
    rows = []
    for name, fan_in, fan_out in (("attention projection", hidden, hidden),
                                  ("feed-forward in", hidden, intermediate),
                                  ("feed-forward out", intermediate, hidden)):
        rows += [(f"{name}: X @ W", tokens, fan_in, fan_out, False, False),
                 (f"{name}: dY @ W^T", tokens, fan_out, fan_in, False, True),
                 (f"{name}: X^T @ dY", fan_in, tokens, fan_out, True, False)]
    return rows + [("square 4096^3", 4096, 4096, 4096, False, False)]


def gflops(rows, inner, columns, transpose_a, transpose_b, jit_compile, repeats=20):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a_shape = (inner, rows) if transpose_a else (rows, inner)
    b_shape = (columns, inner) if transpose_b else (inner, columns)
    repeats = 1 if rows * inner * columns > 2 ** 33 else repeats
    # Distinct left operands, run one after the other and all used: nothing is merged or
    # pruned, and no other op of any size is timed.
    lefts = [tf.constant(rng.random(a_shape, dtype=np.float32)) for _ in range(repeats)]
    b = tf.constant(rng.random(b_shape, dtype=np.float32))

    @tf.function(jit_compile=jit_compile)
    def products(lefts, b):
        done = []
        for a in lefts:
            with tf.control_dependencies(done[-1:]):
                done.append(tf.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b))
        return tf.add_n([product[0, 0] for product in done])  # every product is used

    products(lefts, b).numpy()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        products(lefts, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * rows * inner * columns * repeats / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="albert_base")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--xla", action="store_true")
    args = parser.parse_args()
    from keras_albert.presets import preset_config

    tokens = args.batch * args.seq
    print(f"| product ({'XLA' if args.xla else 'tf.function'}) | shape | GFLOP/s |")
    print("|---|---|---|")
    for name, rows, inner, columns, ta, tb in shapes(preset_config(args.preset), tokens):
        rate = gflops(rows, inner, columns, ta, tb, args.xla)
        print(f"| {name} | {rows} x {inner} x {columns} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
