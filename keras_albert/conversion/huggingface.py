"""Hugging Face model directories: read, write back, and fetch from the Hub.

A directory holds `config.json` and the weights as `model.safetensors` (or shards
listed in `model.safetensors.index.json`). `pytorch_model.bin` files are pickles,
which can run arbitrary code when loaded, so they are read only with an explicit
`allow_pickle=True`. Tensor names are the ones `transformers_names.py` lists.
"""

import json
import os
import pathlib
import shutil
import tempfile
import threading

from keras_albert.conversion.transformers_config import (
    check_family,
    transformers_config_from_encoder,
)
from keras_albert.conversion.transformers_names import model_parts
from keras_albert.conversion.transformers_weights import (
    model_from_transformers,
    transformers_architecture,
    transformers_state_dict,
)

HUB_SCHEME = "hf://"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_FILE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"
TOKENIZER_FILES = ("vocab.txt", "spiece.model", "tokenizer_config.json",
                   "special_tokens_map.json")


def _read_json(path, what):
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({what}): {error}") from error


def _load_safetensors(path):
    import safetensors.numpy

    try:
        return safetensors.numpy.load_file(str(path))
    except TypeError:
        # NumPy has no bfloat16: read such files through TensorFlow, as float32.
        import safetensors.tensorflow

        tensors = safetensors.tensorflow.load_file(str(path))
        return {name: value.numpy().astype("float32") for name, value in tensors.items()}
    except Exception as error:  # safetensors' own SafetensorError for bad files
        raise ValueError(
            f"Cannot read {path}: {error}. The file is truncated or corrupt; download "
            "it again."
        ) from error


def _load_pickle(path):
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"Reading {path} needs PyTorch; or convert it to safetensors.") \
            from error
    try:
        # weights_only refuses arbitrary objects; the opt-in is still required since
        # the pickle format itself is the risk.
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"Cannot read {path}: {error}") from error
    return {name: value.detach().float().numpy() for name, value in state.items()}


def _sharded(directory, index_name, load):
    index = _read_json(directory / index_name, "shard index")
    files = sorted(set(index.get("weight_map", {}).values()))
    if not files:
        raise ValueError(f"{directory / index_name} lists no weight files.")
    state = {}
    for name in files:
        if not (directory / name).exists():
            raise FileNotFoundError(f"Shard {name} listed in {index_name} is missing from "
                                    f"{directory}.")
        shard = load(directory / name)
        duplicates = sorted(set(shard) & set(state))
        if duplicates:
            raise ValueError(f"Tensors {duplicates} appear in more than one shard.")
        state.update(shard)
    return state


def read_huggingface_directory(directory, allow_pickle=False):
    """Reads `config.json` and the weights of a Hugging Face model directory.

    Args:
        directory: the directory, as written by transformers' `save_pretrained`.
        allow_pickle: also read `pytorch_model.bin` (a pickle) when there are no
            safetensors files. Only for files you trust.

    Returns:
        `(config dict, {name: numpy array})`.

    Example:

    >>> config, state = read_huggingface_directory("minilm-l6-h384-uncased")  # doctest: +SKIP
    >>> config["model_type"], state["embeddings.word_embeddings.weight"].shape  # doctest: +SKIP
    ('bert', (30522, 384))
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory.")
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"{directory} has no config.json; it is not a Hugging Face "
                                "model directory.")
    config = _read_json(directory / "config.json", "model config")
    check_family(config.get("model_type"))  # before reading weights we cannot use
    if (directory / SAFETENSORS_FILE).exists():
        return config, _load_safetensors(directory / SAFETENSORS_FILE)
    if (directory / SAFETENSORS_INDEX).exists():
        return config, _sharded(directory, SAFETENSORS_INDEX, _load_safetensors)
    pickles = [name for name in (PICKLE_FILE, PICKLE_INDEX) if (directory / name).exists()]
    if pickles and not allow_pickle:
        raise ValueError(
            f"{directory} has only {pickles[0]}, a pickle file: loading it can run "
            "arbitrary code. If you trust it, pass allow_pickle=True (keras-albert "
            "convert --allow-pickle); or save the model as safetensors."
        )
    if (directory / PICKLE_FILE).exists():
        return config, _load_pickle(directory / PICKLE_FILE)
    if (directory / PICKLE_INDEX).exists():
        return config, _sharded(directory, PICKLE_INDEX, _load_pickle)
    raise FileNotFoundError(
        f"{directory} has no weights: expected {SAFETENSORS_FILE} (or "
        f"{SAFETENSORS_INDEX} with shards, or {PICKLE_FILE} with allow_pickle=True). "
        f"Found: {sorted(p.name for p in directory.iterdir())}."
    )


def load_huggingface(directory, heads=False, allow_pickle=False, **overrides):
    """Builds our model from a Hugging Face ALBERT / BERT / DistilBERT directory.

    Args:
        directory: holds `config.json` and `model.safetensors`.
        heads: False for an `Encoder`; True for a `PretrainingModel` with the
            checkpoint's masked-LM head (and SOP / NSP head when it has one).
        allow_pickle: allow reading `pytorch_model.bin`.
        **overrides: runtime options such as `dropout` or `remat`.

    Example:

    >>> encoder = load_huggingface("minilm-l6-h384-uncased")  # doctest: +SKIP
    """
    config, state = read_huggingface_directory(directory, allow_pickle=allow_pickle)
    family = config.get("model_type")
    return model_from_transformers(
        config, state, heads=heads, description=f"{family} checkpoint in {directory}",
        **overrides
    )


def tokenizer_from_directory(directory):
    """The tokenizer of a Hugging Face directory (`spiece.model` or `vocab.txt`), or None.

    Lowercasing and accent stripping follow `tokenizer_config.json` when present
    (`do_lower_case`, `strip_accents`, `keep_accents`), else the uncased defaults. A
    directory holding both vocabularies is refused: one of them is not the model's,
    and a model with enough embeddings would run with the wrong one unnoticed.
    """
    directory = pathlib.Path(directory)
    present = [name for name in ("spiece.model", "vocab.txt") if (directory / name).exists()]
    if len(present) > 1:
        raise ValueError(
            f"{directory} holds two vocabularies, spiece.model and vocab.txt; one of them "
            "is not the model's. Remove it, or name the model's with vocab= (--vocab).")
    return tokenizer_from_vocabulary(directory / present[0]) if present else None


def tokenizer_from_vocabulary(path):
    """The tokenizer of a `spiece.model` or `vocab.txt` file, with the settings of the
    `tokenizer_config.json` beside it (as `tokenizer_from_directory`)."""
    from keras_albert.tokenizers import SentencePieceTokenizer, WordPieceTokenizer

    path = pathlib.Path(path)
    settings = {}
    if (path.parent / "tokenizer_config.json").exists():
        settings = _read_json(path.parent / "tokenizer_config.json", "tokenizer config")
    lowercase = bool(settings.get("do_lower_case", True))
    if path.name == "spiece.model":
        return SentencePieceTokenizer(
            str(path),
            lowercase=lowercase,
            strip_accents=not settings.get("keep_accents", False),
        )
    strip_accents = settings.get("strip_accents")
    # BERT's tokenizer strips accents when lowercasing unless told otherwise.
    strip_accents = lowercase if strip_accents is None else bool(strip_accents)
    return WordPieceTokenizer(str(path), lowercase=lowercase, strip_accents=strip_accents)


def write_tokenizer(tokenizer, directory):
    """Writes `spiece.model` or `vocab.txt` and `tokenizer_config.json` to `directory`."""
    directory = pathlib.Path(directory)
    from keras_albert.tokenizers import SentencePieceTokenizer, WordPieceTokenizer

    if isinstance(tokenizer, WordPieceTokenizer):
        text = "".join(token + "\n" for token in tokenizer.get_vocabulary())
        (directory / "vocab.txt").write_text(text, encoding="utf-8")
        settings = {"do_lower_case": tokenizer.lowercase,
                    "strip_accents": tokenizer.strip_accents}
    elif isinstance(tokenizer, SentencePieceTokenizer):
        (directory / "spiece.model").write_bytes(tokenizer.proto)
        settings = {"do_lower_case": tokenizer.lowercase,
                    "keep_accents": not tokenizer.strip_accents}
    else:
        raise TypeError(f"Cannot write a {type(tokenizer).__name__} as Hugging Face files.")
    (directory / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n")


def _default_permissions(root):
    # mkdtemp (and safetensors) create private files; give the output the usual
    # permissions under the user's umask.
    umask = os.umask(0o022)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def check_destination(destination, overwrite):
    """Refuses an existing output path (an empty directory is fine) unless `overwrite`."""
    destination = pathlib.Path(destination)
    if overwrite or not destination.exists():
        return
    if destination.is_dir() and not any(destination.iterdir()):
        return
    raise FileExistsError(f"{destination} exists; pass overwrite=True (--overwrite) to "
                          "replace it.")


def write_atomically(destination, write, overwrite):
    """Writes into a scratch path beside `destination`, then renames it into place,
    so that a failure never leaves a partial output."""
    destination = pathlib.Path(destination)
    check_destination(destination, overwrite)
    destination.parent.mkdir(parents=True, exist_ok=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial",
                                            dir=destination.parent))
    try:
        result = write(scratch)
        _default_permissions(scratch)
        if destination.is_dir():
            shutil.rmtree(destination)
        elif destination.exists():
            destination.unlink()
        os.replace(result, destination)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
    return destination


def save_huggingface(model, directory, tokenizer=None, overwrite=False):
    """Writes `model` as a Hugging Face directory transformers loads.

    `config.json` and `model.safetensors` (float32) for an `Encoder`
    (`AlbertModel` / `BertModel` / `DistilBertModel`) or a `PretrainingModel`
    (`AlbertForPreTraining`, `BertForPreTraining`, `*ForMaskedLM`); with a
    `tokenizer`, also its `vocab.txt` or `spiece.model` and `tokenizer_config.json`.
    The directory appears complete or not at all.

    Example:

    >>> from keras_albert import Encoder
    >>> save_huggingface(Encoder.from_preset("bert_tiny"), "/tmp/bert_tiny_hf")  # doctest: +SKIP
    >>> transformers.AutoModel.from_pretrained("/tmp/bert_tiny_hf")  # doctest: +SKIP
    """
    from safetensors.numpy import save_file

    encoder, _, _ = model_parts(model)
    architecture = transformers_architecture(model)
    config = transformers_config_from_encoder(encoder, architecture)
    state = transformers_state_dict(model)

    def write(scratch):
        (scratch / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_file(state, str(scratch / SAFETENSORS_FILE), metadata={"format": "pt"})
        if tokenizer is not None:
            write_tokenizer(tokenizer, scratch)
        return scratch

    return write_atomically(directory, write, overwrite)


def _offline():
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def download(hub_id, allow_pickle=False, timeout=20.0):
    """Downloads a Hub model (`"hf://owner/name"`, optionally `@revision`) to the
    local cache and returns its directory.

    Only the config, weights and tokenizer files are fetched. Honours
    `HF_HUB_OFFLINE` (then only the local cache is used). Fails within about
    `timeout` seconds, with a message saying to pass a local directory, when the
    Hub cannot be reached.

    Example:

    >>> directory = download("hf://albert/albert-base-v2")  # doctest: +SKIP
    """
    repo_id = hub_id[len(HUB_SCHEME):] if hub_id.startswith(HUB_SCHEME) else hub_id
    repo_id, _, revision = repo_id.partition("@")
    if not repo_id or repo_id.count("/") > 1 or repo_id.startswith("/"):
        raise ValueError(f"{hub_id!r} is not a Hub model id; expected 'hf://owner/name'.")
    advice = (
        f"Download it where the Hub is reachable (for example `huggingface-cli download "
        f"{repo_id} --local-dir DIR`) and pass the local directory instead."
    )
    try:
        import huggingface_hub
    except ImportError as error:
        raise ImportError(f"Fetching {hub_id} needs huggingface_hub. {advice}") from error

    patterns = ["config.json", SAFETENSORS_FILE, SAFETENSORS_INDEX, "model-*.safetensors",
                *TOKENIZER_FILES]
    if allow_pickle:
        patterns += [PICKLE_FILE, PICKLE_INDEX, "pytorch_model-*.bin"]
    outcome = {}

    def fetch():
        try:
            outcome["path"] = huggingface_hub.snapshot_download(
                repo_id,
                revision=revision or None,
                allow_patterns=patterns,
                local_files_only=_offline(),
                etag_timeout=max(1.0, min(10.0, timeout / 2)),
            )
        except Exception as error:  # network, offline mode, missing repo: all reported
            outcome["error"] = error

    # A daemon thread bounds the wait even if a connection hangs somewhere the
    # library's own timeouts do not reach.
    worker = threading.Thread(target=fetch, name=f"download {repo_id}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise OSError(f"Could not download {hub_id}: no answer from the Hugging Face Hub "
                      f"within {timeout:g} s. {advice}")
    if "error" in outcome:
        error = outcome["error"]
        reason = "HF_HUB_OFFLINE is set and it is not in the local cache" if _offline() \
            else f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        raise OSError(f"Could not download {hub_id} ({reason}). {advice}") from error
    return pathlib.Path(outcome["path"])

