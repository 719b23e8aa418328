"""`from_pretrained` and `convert`: one entry point for every checkpoint format.

Sources, told apart by what they contain:

- Hugging Face directories (`config.json` with a `model_type`, `model.safetensors`);
- Hub ids `hf://owner/name[@revision]`, downloaded into the local Hub cache;
- keras-hub presets (`config.json` with a `class_name`, `model.weights.h5`);
- original google-research/albert TF1 checkpoints (a directory or a checkpoint
  prefix, with `albert_config.json` beside it).
"""

import pathlib
from typing import NamedTuple, Optional

import keras

from keras_albert.conversion import huggingface, keras_hub_presets, tf1_albert

FORMATS = ("keras", "hf")


class Pretrained(NamedTuple):
    """What `from_pretrained` returns; unpack it as `model, preprocessor = ...`.

    `model` is an `Encoder` (or a `PretrainingModel` with `heads=True`);
    `preprocessor` a `Preprocessor` for the checkpoint's vocabulary, or None when
    the checkpoint has none.
    """

    model: keras.Model
    preprocessor: Optional[keras.layers.Layer]


def _is_tf1_checkpoint(path):
    if pathlib.Path(f"{path}.index").exists():
        return True
    if not path.is_dir():
        return False
    return any(
        (path / name).exists()
        for name in (tf1_albert.CONFIG_FILE, "checkpoint", "variables/variables.index")
    ) or any(path.glob("*.index"))


def source_format(source):
    """`"hub"`, `"huggingface"`, `"keras_hub"` or `"tf1"` for a `from_pretrained` source.

    >>> source_format("hf://albert/albert-base-v2")
    'hub'
    """
    if str(source).startswith(huggingface.HUB_SCHEME):
        return "hub"
    path = pathlib.Path(source)
    if path.is_dir() and (path / "config.json").exists():
        if keras_hub_presets.is_keras_hub_preset(path):
            return "keras_hub"
        return "huggingface"
    if _is_tf1_checkpoint(path):
        return "tf1"
    if not path.exists():
        hint = ""
        if str(source).count("/") == 1 and not str(source).startswith((".", "/")):
            hint = f" For a Hub model, write 'hf://{source}'."
        raise FileNotFoundError(
            f"{source} does not exist. Pass a Hugging Face model directory, a keras-hub "
            f"preset directory, an ALBERT TF1 checkpoint or 'hf://owner/name'.{hint}"
        )
    raise ValueError(
        f"Cannot tell what {source} holds: expected a Hugging Face directory (config.json "
        "with model_type + model.safetensors), a keras-hub preset (config.json with "
        "class_name + model.weights.h5) or an ALBERT TF1 checkpoint (*.index + "
        "albert_config.json)."
    )


def _preprocessor(tokenizer, encoder, seq_length, pad_to):
    from keras_albert.tokenizers import Preprocessor

    if tokenizer is None:
        return None
    if tokenizer.vocabulary_size > encoder.vocabulary_size:
        raise ValueError(
            f"The tokenizer has {tokenizer.vocabulary_size} tokens but the model only "
            f"{encoder.vocabulary_size} embeddings; they do not belong together."
        )
    return Preprocessor(tokenizer, seq_length=min(seq_length, encoder.max_sequence_length),
                        pad_to=pad_to)


def from_pretrained(source, heads=False, allow_pickle=False, seq_length=128, pad_to="fixed",
                    timeout=20.0, **overrides):
    """Loads a pretrained checkpoint of any supported format, strictly.

    Every checkpoint tensor must find its variable, every variable a tensor, with
    equal shapes; otherwise a `ValueError` lists the problems and nothing is
    returned.

    Args:
        source: a Hugging Face directory, `"hf://owner/name"`, a keras-hub preset
            directory, or an ALBERT TF1 checkpoint directory / prefix.
        heads: False returns the `Encoder` (pretraining heads in the checkpoint are
            recognised and left out); True returns a `PretrainingModel` with the
            checkpoint's masked-LM head and its SOP / NSP head when it has one.
        allow_pickle: allow `pytorch_model.bin` (a pickle: only for trusted files).
        seq_length, pad_to: for the `Preprocessor` (see `InputPacker`); the
            sequence length is capped at the model's position table.
        timeout: seconds to wait for the Hub before giving up.
        **overrides: runtime options (`dropout`, `attention_dropout`, `activation`,
            `seed`, `remat`, `dtype`, `name`). Forcing an activation other than the
            checkpoint's warns.

    Returns:
        `Pretrained(model, preprocessor)`; `preprocessor` is None when the
        checkpoint has no vocabulary (`vocab.txt` or `spiece.model`).

    Example:

    >>> import keras_albert
    >>> encoder, preprocessor = keras_albert.from_pretrained(
    ...     "minilm-l6-h384-uncased")  # doctest: +SKIP
    >>> encoder(preprocessor(["Hello world."]))["sequence_output"].shape  # doctest: +SKIP
    TensorShape([1, 128, 384])
    """
    kind = source_format(source)
    if kind == "hub":
        source = huggingface.download(source, allow_pickle=allow_pickle, timeout=timeout)
        kind = "huggingface"
    if kind == "huggingface":
        model = huggingface.load_huggingface(source, heads=heads, allow_pickle=allow_pickle,
                                             **overrides)
        tokenizer = huggingface.tokenizer_from_directory(source)
    elif kind == "keras_hub":
        model = keras_hub_presets.load_keras_hub_preset(source, heads=heads, **overrides)
        tokenizer = keras_hub_presets.tokenizer_from_preset(source)
    else:
        model = tf1_albert.load_tf1_albert(source, heads=heads, **overrides)
        tokenizer = tf1_albert.tokenizer_beside_checkpoint(source)
    encoder = getattr(model, "encoder", model)
    return Pretrained(model, _preprocessor(tokenizer, encoder, seq_length, pad_to))


def destination_format(destination, format=None):
    """`"keras"` for a `.keras` file, else `"hf"` (a directory), unless `format` says.

    >>> destination_format("model.keras"), destination_format("model_dir")
    ('keras', 'hf')
    """
    is_keras_file = str(destination).endswith(".keras")
    if format is None:
        return "keras" if is_keras_file else "hf"
    if format not in FORMATS:
        raise ValueError(f"Unknown format {format!r}; expected one of {FORMATS}.")
    if format == "keras" and not is_keras_file:
        raise ValueError(f"A Keras model file must end in .keras; got {destination}.")
    if format == "hf" and is_keras_file:
        raise ValueError(f"{destination} ends in .keras but format='hf' writes a directory.")
    return format


def convert(source, destination, format=None, heads=False, allow_pickle=False,
            overwrite=False, timeout=20.0):
    """Converts a checkpoint to a `.keras` file or a Hugging Face directory.

    The `.keras` file loads with `keras.saving.load_model` once `keras_albert` is
    imported; the directory with transformers' `AutoModel.from_pretrained` (and
    holds the tokenizer's vocabulary when the source has one). Output appears
    complete or not at all; an existing destination is replaced only with
    `overwrite=True`.

    Args:
        source: anything `from_pretrained` accepts.
        destination: a path ending in `.keras`, or a directory.
        format: `"keras"` or `"hf"`; from the destination's extension if None.
        heads, allow_pickle, timeout: as for `from_pretrained`.
        overwrite: replace an existing destination.

    Returns:
        The destination path.

    Example:

    >>> convert("hf_bert_dir", "bert.keras")  # doctest: +SKIP
    >>> convert("albert_tf1_dir", "albert_hf", heads=True)  # doctest: +SKIP
    """
    format = destination_format(destination, format)
    destination = pathlib.Path(destination)
    huggingface.check_destination(destination, overwrite)  # before the slow part
    model, preprocessor = from_pretrained(source, heads=heads, allow_pickle=allow_pickle,
                                          timeout=timeout)
    if format == "hf":
        tokenizer = preprocessor.tokenizer if preprocessor is not None else None
        return huggingface.save_huggingface(model, destination, tokenizer=tokenizer,
                                            overwrite=overwrite)

    def write(scratch):
        path = scratch / destination.name
        model.save(str(path))
        return path

    return huggingface.write_atomically(destination, write, overwrite)
