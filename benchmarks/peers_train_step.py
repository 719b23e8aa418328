"""Training-step throughput: our encoder against keras-hub and transformers, one run.

The same ALBERT configuration, batch and sequence length for every system; Adam;
loss = mean(sequence_output ** 2); each system in a fresh process, one after the
other, so they never share the cores. Prints a Markdown table and, with --write,
replaces the matching section of docs/benchmarks.md.

    python benchmarks/peers_train_step.py --preset albert_base --batch 8 --seq 128 --write
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SYSTEMS = ("ours", "ours_xla", "keras_hub", "keras_hub_xla", "transformers_torch",
           "matmul_floor")
PEERS = ("keras_hub_xla", "transformers_torch")


def _batch(vocabulary_size, batch, seq):
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocabulary_size, (batch, seq)).astype("int32")
    types = np.zeros_like(ids)
    types[:, seq // 2:] = 1
    return ids, np.ones_like(ids), types


def _time_steps(step, steps, warmup):
    times = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        step()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _run_keras(system, config, batch, seq, steps, warmup):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    ids, mask, types = _batch(config["vocabulary_size"], batch, seq)
    if system.startswith("ours"):
        from keras_albert.models.encoder import Encoder

        model = Encoder(**config)
        inputs = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}
    else:
        import keras_hub

        model = keras_hub.models.AlbertBackbone(
            vocabulary_size=config["vocabulary_size"], num_layers=config["num_layers"],
            num_heads=config["num_heads"], embedding_dim=config["embedding_dim"],
            hidden_dim=config["hidden_dim"],
            intermediate_dim=config.get("intermediate_dim") or 4 * config["hidden_dim"],
            dropout=config["dropout"], num_groups=config.get("num_groups", 1),
            num_inner_repetitions=config.get("inner_group_num", 1),
        )
        inputs = {"token_ids": ids, "padding_mask": mask, "segment_ids": types}
    inputs = {key: tf.constant(value) for key, value in inputs.items()}
    optimizer = keras.optimizers.Adam(1e-5)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=system.endswith("xla"))
    def step():
        with tf.GradientTape() as tape:
            output = model(inputs, training=True)["sequence_output"]
            loss = tf.reduce_mean(tf.square(tf.cast(output, tf.float32)))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return _time_steps(lambda: step().numpy(), steps, warmup), model.count_params()


def _run_torch(config, batch, seq, steps, warmup):
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count())
    hf_config = transformers.AlbertConfig(
        vocab_size=config["vocabulary_size"], embedding_size=config["embedding_dim"],
        hidden_size=config["hidden_dim"], num_hidden_layers=config["num_layers"],
        num_attention_heads=config["num_heads"],
        intermediate_size=config.get("intermediate_dim") or 4 * config["hidden_dim"],
        hidden_dropout_prob=config["dropout"], attention_probs_dropout_prob=config["dropout"],
        hidden_act="gelu_new", num_hidden_groups=config.get("num_groups", 1),
        inner_group_num=config.get("inner_group_num", 1),
    )
    model = transformers.AlbertModel(hf_config).train()
    ids, mask, types = (torch.tensor(a, dtype=torch.long) for a in _batch(
        config["vocabulary_size"], batch, seq))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)

    def step():
        optimizer.zero_grad()
        output = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
        loss = output.last_hidden_state.pow(2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    return _time_steps(step, steps, warmup), model.num_parameters()


def matmul_floor_step(config, batch, seq):
    """The `matmul_floor` network for an encoder config: returns (step, variables).

    `step()` runs one training step of a network made of the encoder's matrix
    multiplications only: the embedding projection (when E != H), then per block
    application the query/key/value/output projections, the two attention products
    and the two feed-forward projections, with the config's weight sharing; then the
    gradients of a squared loss and an Adam update.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_albert.layers import layer_schedule

    hidden, heads = config["hidden_dim"], config["num_heads"]
    intermediate = config.get("intermediate_dim") or 4 * hidden
    embedding = config.get("embedding_dim") or hidden
    sharing = config.get("sharing", "none")
    tokens, head_dim = batch * seq, hidden // heads
    rng = np.random.default_rng(0)

    def weight(rows, columns):
        return tf.Variable(rng.normal(0, rows ** -0.5, (rows, columns)).astype("float32"))

    attention, feed_forward, blocks = {}, {}, []
    for layer, group, inner in layer_schedule(config["num_layers"], config.get("num_groups", 1),
                                              config.get("inner_group_num", 1)):
        key = (group, inner) if sharing in ("all", "attention") else (layer, inner)
        if key not in attention:
            attention[key] = [weight(hidden, hidden) for _ in range(4)]
        blocks.append(attention[key])
        key = (group, inner) if sharing in ("all", "ffn") else (layer, inner)
        if key not in feed_forward:
            feed_forward[key] = [weight(hidden, intermediate), weight(intermediate, hidden)]
        blocks[-1] = blocks[-1] + feed_forward[key]
    projection = [weight(embedding, hidden)] if embedding != hidden else []
    variables = projection + [v for weights in (*attention.values(), *feed_forward.values())
                              for v in weights]
    embedded = tf.constant(rng.normal(0, 1, (tokens, embedding)).astype("float32"))
    optimizer = keras.optimizers.Adam(1e-5)
    optimizer.build(variables)

    def split_heads(x):
        return tf.transpose(tf.reshape(x, (batch, seq, heads, head_dim)), (0, 2, 1, 3))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            x = embedded @ projection[0] if projection else embedded
            for query, key, value, output, up, down in blocks:
                scores = tf.matmul(split_heads(x @ query), split_heads(x @ key),
                                   transpose_b=True) * (head_dim * seq) ** -0.5
                context = tf.matmul(scores, split_heads(x @ value))
                context = tf.reshape(tf.transpose(context, (0, 2, 1, 3)), (tokens, hidden))
                x = context @ output @ up @ down
                # One scalar rescale keeps the values finite (scores are quadratic in x).
                x = x * tf.math.rsqrt(tf.reduce_mean(tf.square(tf.stop_gradient(x))))
            loss = tf.reduce_mean(tf.square(x))
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    return step, variables


def _run_matmul_floor(config, batch, seq, steps, warmup):
    step, variables = matmul_floor_step(config, batch, seq)
    parameters = sum(int(v.shape.num_elements()) for v in variables)
    return _time_steps(lambda: step().numpy(), steps, warmup), parameters


def run_system(system, preset, batch, seq, steps, warmup):
    from keras_albert.presets import preset_config

    config = preset_config(preset)
    if system == "transformers_torch":
        seconds, params = _run_torch(config, batch, seq, steps, warmup)
    elif system == "matmul_floor":
        seconds, params = _run_matmul_floor(config, batch, seq, steps, warmup)
    else:
        seconds, params = _run_keras(system, config, batch, seq, steps, warmup)
    sys.path.insert(0, str(ROOT))
    from keras_albert.training.benchmark import model_flops_per_step

    flops = model_flops_per_step(config, batch, seq, masked=0)
    return {"system": system, "step_time_s": round(seconds, 3), "params": params,
            "tokens_per_s": round(batch * seq / seconds, 1),
            "model_gflop_per_s": round(flops / seconds / 1e9, 1)}


def isolated(system, args):
    command = [sys.executable, __file__, "--child", system, "--preset", args.preset,
               "--batch", str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps),
               "--warmup", str(args.warmup)]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"system": system, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(lines[-1])


def _median_row(runs):
    """The run with the median step time of one system, with every round's time listed."""
    good = sorted((r for r in runs if "error" not in r), key=lambda r: r["step_time_s"])
    if not good:
        return runs[0]
    row = dict(good[(len(good) - 1) // 2])
    row["rounds"] = [r["step_time_s"] for r in good]
    return row


def _cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def replace_section(path, title, body):
    """Replaces `## title` ... (up to the next `## `) in a Markdown file, or appends it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(f"## {title}\n")
    section = f"## {title}\n\n{body.strip()}\n\n"
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    path.write_text(text.rstrip() + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="albert_base")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds over all systems; the table shows each one's median")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_system(args.child, args.preset, args.batch, args.seq,
                                    args.steps, args.warmup)))
        return
    systems = args.systems.split(",")
    # Rounds interleave the systems so that a slow spell of a shared machine hits all of them.
    rounds = [[isolated(system, args) for system in systems] for _ in range(args.repeats)]
    rows = [_median_row([r[index] for r in rounds]) for index in range(len(systems))]
    peers = [r for r in rows if r["system"] in PEERS and "error" not in r]
    fastest_peer = min((r["step_time_s"] for r in peers), default=None)
    lines = ["| system | step time (s) | tokens/s | model GFLOP/s | vs fastest peer | rounds (s) |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['system']} | error: {row['error']} | | | | |")
            continue
        ratio = f"{fastest_peer / row['step_time_s']:.2f}x" if fastest_peer else "-"
        lines.append(f"| {row['system']} | {row['step_time_s']} | {row['tokens_per_s']} | "
                     f"{row['model_gflop_per_s']} | {ratio} | "
                     f"{', '.join(str(t) for t in row['rounds'])} |")
    floor = next((r for r in rows if r["system"] == "matmul_floor" and "error" not in r), None)
    if floor and fastest_peer:
        lines += ["", f"1.1x the fastest peer needs {fastest_peer / 1.1:.3f} s a step; the matmul "
                  f"floor takes {floor['step_time_s']} s, so no TensorFlow implementation can "
                  f"be more than {fastest_peer / floor['step_time_s']:.2f}x faster here."]
    command = "python benchmarks/peers_train_step.py " + " ".join(sys.argv[1:])
    body = "\n".join([
        f"Training step of {args.preset}, batch {args.batch} x seq {args.seq}, float32, Adam, "
        "loss = mean(sequence_output^2); median of "
        f"{args.steps} steps after {args.warmup} warm-up steps; each system in a fresh "
        f"process, in {args.repeats} interleaved round(s); the table shows each system's "
        "median round. `ours`/`keras_hub` run in `tf.function`, `_xla` with "
        "`jit_compile=True`; transformers runs eagerly on PyTorch (CPU). `matmul_floor` runs "
        "only the step's matrix multiplications (see the script's docstring). Model GFLOP/s "
        "uses the formula in `training/benchmark.py`.",
        "",
        f"Command: `{command.replace(' --write', '')}`  ",
        f"Machine: {_cpu_name()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}  ",
        f"Date: {datetime.date.today().isoformat()}",
        "",
        *lines,
    ])
    print(body)
    if args.write:
        replace_section(ROOT / "docs" / "benchmarks.md",
                        f"Training step against peers ({args.preset}, B{args.batch} S{args.seq})",
                        body)


if __name__ == "__main__":
    main()
