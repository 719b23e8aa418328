"""Data parallelism on one CPU: 1 vs 2 logical CPU devices (a benchmark, not a test).

A small classifier (random weights, random token ids) trains with `model.fit` at a
fixed *global* batch: once under `OneDeviceStrategy("/cpu:0")`, once under
`MirroredStrategy` over two logical CPU devices made from the one physical CPU
(`tf.config.set_logical_device_configuration`), each configuration in a fresh
process. Logical devices share the process's thread pools and the machine's two
cores, so this is not scaling in the usual sense: it weighs what replication costs
(per-replica launches, the gradient all-reduce) against the extra parallelism of
running two half-size batches side by side, which one device's ops, too small to keep
both cores busy, do not get (results and the machine: `docs/benchmarks.md`). Real
data parallelism needs devices with cores of their own (several GPUs, several workers).

    python benchmarks/replicas.py            # markdown table on stdout
    python benchmarks/replicas.py --steps 20 --batch 64 --seq 128
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]

MODELS = {
    # name: Encoder overrides of the bert_tiny preset
    "bert L2 H64": dict(),
    "bert L4 H256": dict(num_layers=4, hidden_dim=256, num_heads=4, intermediate_dim=1024),
}


def _worker(model, devices, batch, seq, steps, warmup):
    import tensorflow as tf

    if devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    sys.path.insert(0, str(ROOT))
    import keras
    import numpy as np

    from keras_albert.models import SequenceClassifier
    from keras_albert.models.encoder import Encoder
    from keras_albert.training.strategy import DistributionPlan

    if devices > 1:
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)])
    else:
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    plan = DistributionPlan(strategy, batch)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        encoder = Encoder.from_preset("bert_tiny", vocabulary_size=8000, dropout=0.0, seed=0,
                                      **MODELS[model])
        classifier = SequenceClassifier(encoder, num_classes=2, dropout=0.0)
        classifier.compile(optimizer=keras.optimizers.Adam(1e-4),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    rows = batch * 4
    ids = rng.integers(5, 8000, size=(rows, seq)).astype("int32")
    x = {"input_word_ids": ids, "input_mask": np.ones_like(ids),
         "input_type_ids": np.zeros_like(ids)}
    y = rng.integers(0, 2, size=rows).astype("int32")
    dataset = plan.prepare(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).repeat())

    times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, step, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, step, logs=None):
            times.append(time.perf_counter() - self.start)

    classifier.fit(dataset, steps_per_epoch=warmup + steps, epochs=1, verbose=0,
                   callbacks=[Timer()])
    timed = sorted(times[warmup:])
    median = timed[len(timed) // 2]
    return {"model": model, "devices": devices, "replicas": strategy.num_replicas_in_sync,
            "global_batch": batch, "per_replica_batch": plan.per_replica_batch, "seq": seq,
            "params": int(encoder.count_params()), "median_step_s": median,
            "steps_per_s": 1.0 / median, "examples_per_s": batch / median}


def _run(model, devices, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    env.pop("TF_CONFIG", None)
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps([model, devices]), "--batch",
         str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps), "--warmup",
         str(args.warmup)], capture_output=True, text=True, env=env, cwd=str(ROOT))
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="global batch (32)")
    parser.add_argument("--seq", type=int, default=128, help="sequence length (128)")
    parser.add_argument("--steps", type=int, default=15, help="timed steps (15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps (3)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        model, devices = json.loads(args.worker)
        print(json.dumps(_worker(model, devices, args.batch, args.seq, args.steps,
                                 args.warmup)))
        return 0
    rows = []
    for model in args.models:
        for devices in (1, 2):
            rows.append(_run(model, devices, args))
    print(f"1 vs 2 logical CPU devices, `model.fit`, Adam, global batch {args.batch} x "
          f"{args.seq} tokens, median of {args.steps} steps after {args.warmup} warm-up "
          f"steps; {os.cpu_count()} cores, {platform.processor() or platform.machine()}.\n")
    print("| model | params | devices (replicas) | per-replica batch | step (s) | steps/s "
          "| examples/s | vs 1 device |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = {}
    for row in rows:
        if row["devices"] == 1:
            base[row["model"]] = row["steps_per_s"]
        ratio = row["steps_per_s"] / base[row["model"]]
        print(f"| {row['model']} | {row['params'] / 1e6:.2f}M | {row['devices']} "
              f"({row['replicas']}) | {row['per_replica_batch']} | "
              f"{row['median_step_s']:.3f} | {row['steps_per_s']:.2f} | "
              f"{row['examples_per_s']:.0f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
