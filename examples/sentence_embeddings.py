"""Sentence embeddings from a real pretrained checkpoint (all-MiniLM-L6-v2).

Loads a Hugging Face BERT directory (config.json, model.safetensors, vocab.txt) into
a keras-albert `Encoder` with strict weight transfer, tokenizes in the graph, and
mean-pools the token vectors over the mask, then L2-normalises: the sentence
embedding that checkpoint was trained for.

    python examples/sentence_embeddings.py [--model-dir DIR] [sentences ...]

DIR defaults to $KERAS_ALBERT_DATA/models/minilm-l6-h384-uncased (or the shared data
folder beside the repository).
"""

import argparse
import json
import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from keras_albert.conversion import encoder_from_transformers  # noqa: E402
from keras_albert.tokenizers import Preprocessor, WordPieceTokenizer  # noqa: E402

DEFAULT_SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar on stage.",
    "The stock market fell sharply on Monday.",
    "Shares dropped at the start of the week.",
]


def default_model_dir():
    data = os.environ.get("KERAS_ALBERT_DATA")
    root = pathlib.Path(data) if data else pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
    return root / "models" / "minilm-l6-h384-uncased"


def load(model_dir, seq_length=128):
    model_dir = pathlib.Path(model_dir)
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        if not (model_dir / name).exists():
            raise FileNotFoundError(f"{model_dir / name} not found: pass --model-dir, a "
                                    "Hugging Face BERT directory.")
    config = json.loads((model_dir / "config.json").read_text())
    encoder = encoder_from_transformers(config, load_file(str(model_dir / "model.safetensors")))
    preprocessor = Preprocessor(WordPieceTokenizer(str(model_dir / "vocab.txt")),
                                seq_length=seq_length, pad_to="batch")
    return encoder, preprocessor


def embed(encoder, preprocessor, sentences):
    features = preprocessor(tf.constant(sentences))
    tokens = encoder(features)["sequence_output"]
    mask = tf.cast(features["input_mask"], tokens.dtype)[..., None]
    mean = tf.reduce_sum(tokens * mask, axis=1) / tf.reduce_sum(mask, axis=1)
    return tf.math.l2_normalize(mean, axis=-1).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=str(default_model_dir()))
    parser.add_argument("sentences", nargs="*", default=DEFAULT_SENTENCES)
    args = parser.parse_args()
    encoder, preprocessor = load(args.model_dir)
    vectors = embed(encoder, preprocessor, args.sentences)
    similarity = vectors @ vectors.T
    print(f"{encoder.count_params():,} parameters; cosine similarities:")
    for row, sentence in enumerate(args.sentences):
        print(f"  {sentence[:45]:45s} " + " ".join(f"{v:5.2f}" for v in similarity[row]))
    return similarity


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
