"""Serving latency of an exported encoder against its peers, and the cost of in-graph
tokenization.

Each system runs in its own fresh process, one after the other, on the same encoder
configuration (default ALBERT-base, random weights), batch sizes and sequence length:

- ours: `keras_albert.export.export_saved_model` (an `Encoder` + `Preprocessor`),
  reloaded with `tf.saved_model.load`; `token_ids` (ids in) and `serving_default`
  (raw text in, tokenized in the graph) signatures;
- keras-hub: `AlbertBackbone` exported with Keras's `model.export(format="tf_saved_model")`,
  reloaded with `tf.saved_model.load` (ids in);
- transformers: `AlbertModel` on PyTorch, eager, `torch.inference_mode()`.

Latency is the median of `--repeats` calls after warm-up calls. Texts are SST-2 dev
sentences repeated to `--seq` word pieces so every system sees full-length rows.

    python benchmarks/serving_latency.py --preset albert_base --seq 128 --batches 1,32
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data_dir():
    return os.environ.get("KERAS_ALBERT_DATA", os.path.join(_REPO, "..", "shared", "data"))


def _texts(count):
    path = os.path.join(_data_dir(), "sst2", "dev.tsv")
    with open(path, encoding="utf-8") as handle:
        next(handle)
        sentences = [line.split("\t")[0] for line in handle]
    # Long enough to fill any --seq: each row joins several sentences.
    return [" ".join(sentences[i:i + 12]) for i in range(count)]


def _median_seconds(call, repeats, warmup=2):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _full_config(preset):
    """Every constructor argument of the preset (the peers need them spelled out)."""
    from keras_albert import Encoder

    return Encoder.from_preset(preset, vocabulary_size=30000).get_config()


def _ids(batch, seq, vocabulary):
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocabulary, size=(batch, seq)).astype("int32")
    ids[:, 0] = 2
    ids[:, -1] = 3
    return {"input_word_ids": ids, "input_mask": np.ones_like(ids),
            "input_type_ids": np.zeros_like(ids)}


def run_ours(config, batches, seq, repeats):
    import tensorflow as tf

    from keras_albert import Encoder
    from keras_albert.export import export_saved_model
    from keras_albert.tokenizers import Preprocessor, SentencePieceTokenizer

    tokenizer = SentencePieceTokenizer(
        os.path.join(_data_dir(), "vocab", "albert_spiece_rebuilt.model"))
    encoder = Encoder.from_preset(config, vocabulary_size=tokenizer.vocabulary_size)
    path = os.path.join(tempfile.mkdtemp(), "encoder")
    export_saved_model(encoder, path, Preprocessor(tokenizer, seq_length=seq), warmup_texts=())
    served = tf.saved_model.load(path)
    by_ids, by_text = served.signatures["token_ids"], served.signatures["serving_default"]
    results = {}
    for batch in batches:
        ids = {k: tf.constant(v) for k, v in _ids(batch, seq, tokenizer.vocabulary_size).items()}
        texts = tf.constant(_texts(batch))
        results[f"ours, ids in, batch {batch}"] = _median_seconds(
            lambda: by_ids(**ids)["sequence_output"].numpy(), repeats)
        results[f"ours, raw text in, batch {batch}"] = _median_seconds(
            lambda: by_text(text=texts)["sequence_output"].numpy(), repeats)
    return results


def run_keras_hub(config, batches, seq, repeats):
    import keras_hub
    import tensorflow as tf

    cfg = _full_config(config)
    backbone = keras_hub.models.AlbertBackbone(
        vocabulary_size=30000, num_layers=cfg["num_layers"], num_heads=cfg["num_heads"],
        num_groups=cfg.get("num_groups", 1), num_inner_repetitions=cfg.get("inner_group_num", 1),
        embedding_dim=cfg["embedding_dim"], hidden_dim=cfg["hidden_dim"],
        intermediate_dim=cfg["intermediate_dim"], dropout=0.0,
        max_sequence_length=cfg["max_sequence_length"])
    path = os.path.join(tempfile.mkdtemp(), "backbone")
    backbone.export(path, format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(path)
    results = {}
    for batch in batches:
        ids = _ids(batch, seq, 30000)
        inputs = {"token_ids": tf.constant(ids["input_word_ids"]),
                  "padding_mask": tf.constant(ids["input_mask"]),
                  "segment_ids": tf.constant(ids["input_type_ids"])}
        results[f"keras-hub, ids in, batch {batch}"] = _median_seconds(
            lambda: served.serve(inputs)["sequence_output"].numpy(), repeats)
    return results


def run_torch(config, batches, seq, repeats):
    import torch
    from transformers import AlbertConfig, AlbertModel

    torch.set_num_threads(os.cpu_count() or 1)
    cfg = _full_config(config)
    model = AlbertModel(AlbertConfig(
        vocab_size=30000, embedding_size=cfg["embedding_dim"], hidden_size=cfg["hidden_dim"],
        num_hidden_layers=cfg["num_layers"], num_attention_heads=cfg["num_heads"],
        intermediate_size=cfg["intermediate_dim"], num_hidden_groups=cfg.get("num_groups", 1),
        inner_group_num=cfg.get("inner_group_num", 1),
        max_position_embeddings=cfg["max_sequence_length"],
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).eval()
    results = {}
    for batch in batches:
        ids = {k: torch.from_numpy(v).long() for k, v in _ids(batch, seq, 30000).items()}
        inputs = {"input_ids": ids["input_word_ids"], "attention_mask": ids["input_mask"],
                  "token_type_ids": ids["input_type_ids"]}

        def call():
            with torch.inference_mode():
                model(**inputs).last_hidden_state.numpy()

        results[f"transformers (torch eager), ids in, batch {batch}"] = _median_seconds(
            call, repeats)
    return results


RUNNERS = {"ours": run_ours, "keras-hub": run_keras_hub, "torch": run_torch}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="albert_base")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--systems", default="ours,keras-hub,torch")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if args.child:
        result = RUNNERS[args.child](args.preset, batches, args.seq, args.repeats)
        print("RESULT " + json.dumps(result))
        return 0
    results = {}
    for system in args.systems.split(","):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=_REPO)
        run = subprocess.run(
            [sys.executable, __file__, "--child", system, "--preset", args.preset,
             "--seq", str(args.seq), "--batches", args.batches,
             "--repeats", str(args.repeats)],
            capture_output=True, text=True, env=env)
        lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
        if run.returncode or not lines:
            print(f"{system} failed:\n{run.stderr[-3000:]}", file=sys.stderr)
            continue
        results.update(json.loads(lines[-1][len("RESULT "):]))
    print(f"{args.preset}, seq {args.seq}, median of {args.repeats} calls")
    print("| system, input, batch | latency (ms) |")
    print("|---|---|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds * 1000:.1f} |")
    for batch in batches:
        ids = results.get(f"ours, ids in, batch {batch}")
        text = results.get(f"ours, raw text in, batch {batch}")
        if ids and text:
            print(f"in-graph tokenization, batch {batch}: +{(text - ids) * 1000:.1f} ms "
                  f"({(text / ids - 1) * 100:.1f}% of the ids-in latency)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
