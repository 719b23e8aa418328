"""`load`, `from_pretrained` and `convert`: one entry point for every model source.

Sources, told apart by what they contain (`source_format`):

- preset names (`albert_base`): random weights, sized to a vocabulary file;
- our own `.keras` files and the run directories `keras-albert pretrain | finetune |
  distill` write (`model.keras` with `spiece.model` or `vocab.txt` beside it);
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
DEFAULT_SEQ_LENGTH = 128  # the preprocessor's length when none is asked for


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


def _keras_file(path):
    """The `.keras` file `path` names, or the one a run directory holds, or None."""
    if path.suffix == ".keras" and path.is_file():
        return path
    if path.is_dir() and not (path / "config.json").exists():
        candidates = sorted(path.glob("*.keras"))
        if len(candidates) > 1:
            raise ValueError(f"{path} holds several .keras files "
                             f"({', '.join(c.name for c in candidates)}); name one.")
        return candidates[0] if candidates else None
    return None


def source_format(source):
    """What a model source is: `"preset"`, `"keras"` (a `.keras` file or a run
    directory holding one), `"hub"`, `"huggingface"`, `"keras_hub"` or `"tf1"`.

    >>> source_format("hf://albert/albert-base-v2"), source_format("albert_base")
    ('hub', 'preset')
    """
    from keras_albert.presets import PRESETS

    if str(source) in PRESETS and not pathlib.Path(source).exists():
        return "preset"
    if str(source).startswith(huggingface.HUB_SCHEME):
        return "hub"
    path = pathlib.Path(source)
    if _keras_file(path) is not None:
        return "keras"
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
            f"{source} does not exist. Pass a preset name, a .keras file or run directory, "
            "a Hugging Face model directory, a keras-hub preset directory, an ALBERT TF1 "
            f"checkpoint or 'hf://owner/name'.{hint}"
        )
    raise ValueError(
        f"Cannot tell what {source} holds: expected a Hugging Face directory (config.json "
        "with model_type + model.safetensors), a keras-hub preset (config.json with "
        "class_name + model.weights.h5) or an ALBERT TF1 checkpoint (*.index + "
        "albert_config.json)."
    )


def _preprocessor(tokenizer, encoder, seq_length, pad_to):
    """The model's preprocessor: `seq_length` long, or when None `DEFAULT_SEQ_LENGTH`
    capped at the model's position table; a longer length asked for is refused."""
    from keras_albert.tokenizers import Preprocessor

    if tokenizer is None:
        return None
    if tokenizer.vocabulary_size > encoder.vocabulary_size:
        raise ValueError(
            f"The tokenizer has {tokenizer.vocabulary_size} tokens but the model only "
            f"{encoder.vocabulary_size} embeddings; they do not belong together."
        )
    positions = encoder.max_sequence_length
    if seq_length is None:
        seq_length = min(DEFAULT_SEQ_LENGTH, positions)
    elif seq_length > positions:
        raise ValueError(f"Sequence length {seq_length} exceeds the model's position table "
                         f"({positions} positions); use at most {positions}.")
    return Preprocessor(tokenizer, seq_length=seq_length, pad_to=pad_to)


def from_pretrained(source, heads=False, allow_pickle=False, seq_length=None, pad_to="fixed",
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
            sequence length defaults to 128, or the model's position table when
            shorter; a longer one than the table is refused.
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
    if kind in ("preset", "keras"):
        raise ValueError(
            f"{source} is a {'preset name' if kind == 'preset' else 'Keras model file'}, "
            "not a pretrained checkpoint: use keras_albert.load(...) for it."
        )
    return _load_checkpoint(kind, source, heads, allow_pickle, seq_length, pad_to, timeout,
                            overrides)


def _load_checkpoint(kind, source, heads, allow_pickle, seq_length, pad_to, timeout,
                     overrides):
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


def load(source, vocab=None, seq_length=None, task_model=False, heads=False,
         allow_pickle=False, pad_to="fixed", timeout=20.0, **overrides):
    """`(model, preprocessor)` from any model source: the one loader behind the CLI.

    - a preset name (`"albert_base"`): a randomly initialised `Encoder`; `vocab` (a
      `spiece.model` or `vocab.txt`) gives the tokenizer and sizes the embeddings;
    - a `.keras` file, or a run directory `keras-albert pretrain | finetune | distill`
      wrote: its encoder (rebuilt with `overrides`), or with `task_model=True` the
      saved model itself (a task model with its head); the tokenizer is `vocab` or
      the vocabulary file beside the model;
    - anything `from_pretrained` reads (Hugging Face directories and `hf://` ids,
      keras-hub presets, ALBERT TF1 checkpoints), with `heads` as there.

    The preprocessor's length is `seq_length` (default: 128, or the model's position
    table when shorter); a longer length than the table is refused, and so are a
    vocabulary larger than the embeddings and a folder holding both a `spiece.model`
    and a `vocab.txt` (unless `vocab` names one).

    >>> model, preprocessor = load("albert_tiny", vocab="spiece.model")  # doctest: +SKIP
    >>> model, preprocessor = load("runs/sst2", task_model=True)  # doctest: +SKIP
    """
    from keras_albert.models.encoder import Encoder

    kind = source_format(source)
    if kind not in ("preset", "keras"):
        model, preprocessor = _load_checkpoint(kind, source, heads, allow_pickle, seq_length,
                                               pad_to, timeout, overrides)
        if preprocessor is None:
            if vocab is None:
                raise ValueError(f"{source} has no vocabulary (vocab.txt or spiece.model); "
                                 "pass vocab=.")
            preprocessor = _preprocessor(tokenizer_from_file(vocab),
                                         getattr(model, "encoder", model), seq_length, pad_to)
        return Pretrained(model, preprocessor)
    if kind == "preset":
        if vocab is None:
            raise ValueError(f"A preset ({source}) has no vocabulary: pass vocab= "
                             "(a spiece.model or vocab.txt file).")
        tokenizer = tokenizer_from_file(vocab)
        model = Encoder.from_preset(source, vocabulary_size=tokenizer.vocabulary_size,
                                    **overrides)
    else:
        keras_file = _keras_file(pathlib.Path(source))
        saved = _read_keras_file(keras_file)
        if task_model:
            if overrides:
                raise ValueError(f"Options {sorted(overrides)} rebuild an encoder; they "
                                 "do not apply with task_model=True.")
            model = saved
        else:
            model = getattr(saved, "encoder", saved)
            if overrides:
                model = Encoder.from_config({**model.get_config(), **overrides})
                model.set_weights(getattr(saved, "encoder", saved).get_weights())
        tokenizer = (tokenizer_from_file(vocab) if vocab
                     else huggingface.tokenizer_from_directory(keras_file.parent))
        if tokenizer is None:
            raise ValueError(f"No spiece.model or vocab.txt beside {keras_file}; pass vocab=.")
    return Pretrained(model, _preprocessor(tokenizer, getattr(model, "encoder", model),
                                           seq_length, pad_to))


def _read_keras_file(path):
    """The model a `.keras` file holds, or a one-line error saying why not (Keras says
    "File not found" for a file that is there but is no zip archive)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a readable .keras file (not a zip archive: "
                         "truncated, or not written by Keras).")
    try:
        # compile=False: the saved optimizer is not needed to use the model.
        return keras.saving.load_model(path, compile=False)
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise ValueError(f"{path} is not a readable .keras file ({reason}).") from error


def tokenizer_from_file(path):
    """The tokenizer of a vocabulary file: a SentencePiece `*.model` or a WordPiece
    `*.txt`. `spiece.model` / `vocab.txt` read the `tokenizer_config.json` beside them;
    other names get the uncased defaults, as `tokenizer_from_directory` does."""
    from keras_albert.tokenizers import SentencePieceTokenizer, WordPieceTokenizer

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Vocabulary file not found: {path}")
    if path.name in ("spiece.model", "vocab.txt"):
        return huggingface.tokenizer_from_vocabulary(path)
    if path.suffix == ".model":
        return SentencePieceTokenizer(str(path), lowercase=True, strip_accents=True)
    if path.suffix == ".txt":
        return WordPieceTokenizer(str(path), lowercase=True, strip_accents=True)
    raise ValueError(f"{path}: a vocabulary is a SentencePiece .model or a WordPiece .txt "
                     "file.")


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
