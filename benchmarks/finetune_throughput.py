"""SST-2 fine-tuning throughput in real (non-padding) tokens/s: ours vs keras-hub.

The same ALBERT-base architecture (random weights; ALBERT's 30k SentencePiece
vocabulary rebuilt in ../shared/data/vocab), SST-2 training sentences (the first
ones of the file: keras-hub in file order, ours in length buckets), batch 32, Adam, through `model.fit`; each system in a fresh process, one
after the other. Ours uses `keras_albert.training.task_dataset.task_dataset` (tokenize once, length
buckets); keras-hub's `AlbertTextClassifier` uses its default preprocessor
(`sequence_length=512`), and, for a fairer second row, `sequence_length=64` (the
longest SST-2 sentence is 66 word pieces here, so a few are cut).

Real tokens are counted with our preprocessor for both (the same SentencePiece
model); the first `--warmup` steps (tracing, compilation) are not timed.

    python benchmarks/finetune_throughput.py --steps 8 --write
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
DATA = pathlib.Path(os.environ.get("KERAS_ALBERT_DATA", ROOT.parent / "shared" / "data"))
SYSTEMS = ("ours", "keras_hub_seq512_default", "keras_hub_seq64")
ALBERT_BASE = dict(vocabulary_size=30000, num_layers=12, num_heads=12, embedding_dim=128,
                   hidden_dim=768, intermediate_dim=3072)


def _sentences(count):
    from keras_albert.training.task_files import load_task_file

    data = load_task_file(DATA / "sst2" / "train.tsv", limit=count)
    return data


class _StepTimer:
    def __init__(self, warmup):
        import keras

        class Timer(keras.callbacks.Callback):
            def on_train_batch_begin(inner, batch, logs=None):
                inner.start = time.perf_counter()

            def on_train_batch_end(inner, batch, logs=None):
                self.times.append(time.perf_counter() - inner.start)

        self.times = []
        self.warmup = warmup
        self.callback = Timer()

    def timed(self):
        return self.times[self.warmup:]


def _run(system, steps, warmup, batch):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_albert.tokenizers import Preprocessor, SentencePieceTokenizer

    spiece = str(DATA / "vocab" / "albert_spiece_rebuilt.model")
    total = (steps + warmup) * batch
    # Three times the sentences needed, so that ours (whose buckets fill at different
    # rates) only ever takes full batches; keras-hub takes the first `total` in order.
    data = _sentences(3 * total)
    ours_preprocessor = Preprocessor(SentencePieceTokenizer(spiece), seq_length=128)
    lengths = np.asarray(ours_preprocessor(data.texts[0])["input_mask"]).sum(1)
    timer = _StepTimer(warmup)
    keras.utils.set_random_seed(0)
    if system == "ours":
        from keras_albert.models.encoder import Encoder
        from keras_albert.models.task_kinds import task_model
        from keras_albert.training.task_dataset import task_dataset

        preprocessor = Preprocessor(SentencePieceTokenizer(spiece), seq_length=128)
        model = task_model(Encoder.from_preset("albert_base"), "classification", 2)
        model.compile(optimizer=keras.optimizers.Adam(2e-5), jit_compile=False)
        # shuffle=False keeps the input order inside each length bucket.
        dataset, order = task_dataset(data, preprocessor, batch_size=batch, return_order=True)
        model.fit(dataset.take(steps + warmup), epochs=1, verbose=0, shuffle=False,
                  callbacks=[timer.callback])
        rows = np.asarray(order)
        consumed = [rows[i * batch:(i + 1) * batch] for i in range(steps + warmup)]
        timed_tokens = sum(lengths[index].sum() for index in consumed[warmup:])
    else:
        import keras_hub

        sequence_length = 512 if "512" in system else 64
        tokenizer = keras_hub.models.AlbertTokenizer(proto=spiece)
        preprocessor = keras_hub.models.AlbertTextClassifierPreprocessor(
            tokenizer, sequence_length=sequence_length)
        backbone = keras_hub.models.AlbertBackbone(**ALBERT_BASE)
        model = keras_hub.models.AlbertTextClassifier(backbone, num_classes=2,
                                                      preprocessor=preprocessor)
        model.compile(optimizer=keras.optimizers.Adam(2e-5))
        dataset = tf.data.Dataset.from_tensor_slices(
            (data.texts[0], data.labels.astype("int32"))).take(total).batch(batch)
        model.fit(dataset, epochs=1, verbose=0, callbacks=[timer.callback])
        timed_tokens = lengths[warmup * batch:total].sum()
    seconds = sum(timer.timed())
    return {"system": system, "timed_steps": len(timer.timed()), "seconds": seconds,
            "real_tokens_per_second": float(timed_tokens) / seconds,
            "seconds_per_step": seconds / len(timer.timed())}


def _table(results):
    best_peer = max(r["real_tokens_per_second"] for r in results if r["system"] != "ours")
    ours = next(r for r in results if r["system"] == "ours")
    lines = ["| system | s/step | real tokens/s | ours / system |", "|---|---|---|---|"]
    for r in results:
        ratio = ours["real_tokens_per_second"] / r["real_tokens_per_second"]
        lines.append(f"| {r['system']} | {r['seconds_per_step']:.2f} | "
                     f"{r['real_tokens_per_second']:.0f} | {ratio:.2f}x |")
    lines.append("")
    lines.append(f"Ours / the faster keras-hub setting: "
                 f"{ours['real_tokens_per_second'] / best_peer:.2f}x.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true",
                        help="replace the section in docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.one:
        steps = args.steps if args.one == "ours" else max(2, args.steps // 4)
        print(json.dumps(_run(args.one, steps, args.warmup, args.batch)))
        return 0
    results = []
    for system in args.systems.split(","):
        command = [sys.executable, __file__, "--one", system, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--batch", str(args.batch)]
        output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    table = _table(results)
    print(table)
    if args.write:
        _write_section(table, args)
    return 0


def _write_section(table, args):
    path = ROOT / "docs" / "benchmarks.md"
    title = "## SST-2 fine-tuning throughput: ours vs keras-hub AlbertTextClassifier"
    command = (f"python benchmarks/finetune_throughput.py --steps {args.steps} "
               f"--warmup {args.warmup} --batch {args.batch} --write")
    machine = platform.processor() or platform.machine()
    description = __doc__.split("\n\n")[1]
    section = (f"{title}\n\n{datetime.date.today().isoformat()}, {machine}, "
               f"{os.cpu_count()} cores. Command: `{command}`\n\n{description}\n\n{table}\n")
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if title in text:
        start = text.index(title)
        end = text.find("\n## ", start + len(title))
        text = text[:start] + section + (text[end + 1:] if end != -1 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
