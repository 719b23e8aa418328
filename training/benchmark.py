"""`keras-albert bench train` (its options: `keras_albert.cli.model_commands`): time and memory of a pretraining-style training step.

Each configuration runs in a fresh Python process, so peak memory is that
configuration's alone. The step is ALBERT's: masked-LM (15% of positions) plus
sentence-order heads on random token ids, through `model.train_on_batch`.

Model FLOPs per step (the usual 6ND accounting, stated so numbers can be checked):

    6 * tokens * W                     W = weights applied per token:
                                         L_applied * (2 H A (k + v) + 2 H I) (+ E H if E != H)
  + 6 * L_applied * A (k + v) * S * tokens
                                       attention scores and weighted sums
  + 6 * masked * (H E + E V)           masked-LM transform and tied decoder

where L_applied = num_layers * inner_group_num (shared weights count every time they
are applied), A the heads, k and v the key and value sizes per head (H / A by default,
which makes the first two terms L_applied (4 H^2 + 2 H I) and 12 L_applied H S tokens).
"""

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def model_flops_per_step(config, batch, seq, masked):
    """Training FLOPs of one step, from the encoder config (see the module docstring)."""
    hidden = config["hidden_dim"]
    intermediate = config.get("intermediate_dim") or 4 * hidden
    embedding = config.get("embedding_dim") or hidden
    applied = config["num_layers"] * config.get("inner_group_num", 1)
    heads = config["num_heads"]
    key_size = config.get("key_size") or hidden // heads
    value_size = config.get("value_size") or hidden // heads
    # Query and key project to heads x key_size, value and output to heads x value_size.
    projections = 2 * hidden * heads * (key_size + value_size)
    weights = applied * (projections + 2 * hidden * intermediate)
    if embedding != hidden:
        weights += embedding * hidden
    tokens = batch * seq
    # Scores (key_size) and context (value_size) per head: 2 FLOPs a multiply-add, x3
    # for the forward and the two backward matmuls.
    attention = 6 * applied * heads * (key_size + value_size) * seq * tokens
    head = 6 * batch * masked * (hidden * embedding + embedding * config["vocabulary_size"])
    return 6 * tokens * weights + attention + head


def _synthetic_batch(vocabulary_size, batch, seq, masked, with_types, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocabulary_size, size=(batch, seq)).astype("int32")
    features = {"input_word_ids": ids, "input_mask": np.ones_like(ids)}
    if with_types:
        types = np.zeros_like(ids)
        types[:, seq // 2:] = 1
        features["input_type_ids"] = types
    positions = np.sort(
        np.stack([rng.choice(seq, size=masked, replace=False) for _ in range(batch)]), axis=1
    ).astype("int32")
    features["masked_positions"] = positions
    labels = {
        "mlm_logits": rng.integers(5, vocabulary_size, size=(batch, masked)).astype("int32"),
        "sop_logits": rng.integers(0, 2, size=(batch,)).astype("int32"),
    }
    return features, labels


def run_one(config):
    """Measures one configuration in this process; returns a result dict."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    from keras_albert.models.encoder import Encoder
    from keras_albert.models.tasks import PretrainingModel
    from keras_albert.presets import preset_config
    from keras_albert.optimizers import optimizer_state_bytes
    from keras_albert.optimizers.factory import create_optimizer

    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    batch, seq = config["batch"], config["seq"]
    masked = config.get("masked") or max(1, round(0.15 * seq))
    encoder_config = preset_config(config["preset"], **config.get("overrides", {}),
                                   remat=config["remat"], dtype=config["precision"], seed=0)
    encoder = Encoder(**encoder_config)
    model = PretrainingModel(encoder, sentence_order=bool(encoder.use_pooler))
    features, labels = _synthetic_batch(encoder.vocabulary_size, batch, seq, masked,
                                        bool(encoder.num_segments))
    if not encoder.use_pooler:
        labels.pop("sop_logits")
    optimizer = create_optimizer(config["optimizer"], learning_rate=1e-4,
                                 gradient_accumulation_steps=config.get("accumulation"))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss={key: loss for key in labels},
                  jit_compile=bool(config["xla"]))

    times = []
    for step in range(config["warmup"] + config["steps"]):
        start = time.perf_counter()
        model.train_on_batch(features, labels)
        if step >= config["warmup"]:
            times.append(time.perf_counter() - start)
    times.sort()
    step_time = times[len(times) // 2]
    flops = model_flops_per_step(encoder_config, batch, seq, masked)
    result = dict(config)
    result.update(
        masked=masked,
        params=model.count_params(),
        step_time_s=round(step_time, 4),
        tokens_per_s=round(batch * seq / step_time, 1),
        model_gflops_per_step=round(flops / 1e9, 2),
        model_gflop_per_s=round(flops / step_time / 1e9, 2),
        optimizer_state_mb=round(optimizer_state_bytes(model.optimizer) / 2**20, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        rss_after_import_mb=round(rss_before_mb, 1),
    )
    if os.environ.get("TF_CPU_ALLOCATOR_USE_BFC") == "true":
        result["peak_tensor_mb"] = round(
            tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20, 1
        )
    return result


def run_isolated(config, timeout=3600):
    """Runs `run_one(config)` in a fresh Python process and returns its result."""
    environment = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true", TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run(
        [sys.executable, "-m", "keras_albert.training.benchmark", "--one", json.dumps(config)],
        capture_output=True, text=True, timeout=timeout, env=environment,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        message = completed.stderr.strip().splitlines()[-3:] or ["(no output)"]
        if completed.returncode < 0 or "MemoryError" in completed.stderr:
            message.insert(0, "out of memory or killed")
        return dict(config, error=" | ".join(message))
    return json.loads(lines[-1])


def configurations(args):
    for preset, batch, seq, remat, precision, optimizer in itertools.product(
        args.preset, args.batch, args.seq, args.remat, args.precision, args.optimizer
    ):
        yield {
            "preset": preset, "batch": batch, "seq": seq, "remat": remat,
            "precision": precision, "optimizer": optimizer, "steps": args.steps,
            "warmup": args.warmup, "xla": args.xla, "accumulation": args.accumulation,
            **({"overrides": dict(args.set)} if getattr(args, "set", None) else {}),
        }


def validate(args):
    from keras_albert.layers.transformer_stack import parse_remat
    from keras_albert.presets import preset_config
    from keras_albert.optimizers.factory import OPTIMIZERS

    overrides = dict(getattr(args, "set", None) or ())
    reserved = sorted({"remat", "dtype", "seed"} & set(overrides))
    if reserved:
        raise ValueError(f"Set {reserved} with --remat / --precision, not --set (the "
                         "benchmark seeds its models itself).")
    for name in args.preset:
        preset_config(name, **overrides)  # an unknown key is named before any work
    for remat in args.remat:
        parse_remat(remat)
    for precision in args.precision:
        if precision not in PRECISIONS:
            raise ValueError(f"Unknown precision {precision!r}; expected one of {PRECISIONS}.")
    for optimizer in args.optimizer:
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}.")
    if args.steps < 1:
        raise ValueError("--steps must be >= 1.")


COLUMNS = ("preset", "batch", "seq", "remat", "precision", "optimizer", "step_time_s",
           "tokens_per_s", "model_gflop_per_s", "peak_tensor_mb", "peak_rss_mb")


def bench_train(args):
    """The `keras-albert bench train` command."""
    validate(args)
    results = []
    if not args.json:
        print(" ".join(f"{c:>14s}" for c in COLUMNS), flush=True)
    for config in configurations(args):
        result = run_isolated(config)
        results.append(result)
        if not args.json:
            if "error" in result:
                print(" ".join(f"{str(result[c]):>14s}" for c in COLUMNS[:6]),
                      "ERROR:", result["error"], flush=True)
            else:
                print(" ".join(f"{str(result.get(c, '-')):>14s}" for c in COLUMNS), flush=True)
    if args.json:
        print(json.dumps(results))
    return 1 if any("error" in r for r in results) else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", required=True, help="one configuration as JSON")
    config = json.loads(parser.parse_args().one)
    print(json.dumps(run_one(config)), flush=True)


if __name__ == "__main__":
    main()
