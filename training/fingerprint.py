"""The pieces of a run's fingerprint: what its result depends on, as JSON-able dicts.

A checkpoint stores the fingerprint of the run that wrote it
(`keras_albert.training.resume`), which compares it with `run_differences`; a run started in the same folder with another one
is refused instead of continuing a different run's weights. Each command assembles
its fingerprint where the information is, from these pieces: the command line adds
its files and model source, `pretrain_on_corpus`, `finetune` and `distill` add the
model, the optimizer, the sequence length, the steps and the data they were given.

>>> import keras
>>> source_settings("tfds:glue/sst2")
{'tfds': 'glue/sst2'}
>>> optimizer_settings(keras.optimizers.SGD(0.5, momentum=0.9))["momentum"]
0.9
"""

import dataclasses
import hashlib
import json
import os

import numpy as np

_HEX = 16  # digits of a sha256 kept: enough to tell files apart, short in a message


def file_settings(path):
    """`{"path", "size", "sha256"}` of a file (the absolute path; the hash of its bytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": os.path.abspath(path), "size": os.path.getsize(path),
            "sha256": digest.hexdigest()[:_HEX]}


def source_settings(spec):
    """A data source as a user names it: a file (`file_settings`), `tfds:NAME[:SPLIT]`
    (by name and split), or None."""
    if spec is None:
        return None
    if str(spec).startswith("tfds:"):
        return {"tfds": str(spec)[len("tfds:"):]}
    return file_settings(spec)


def model_source_settings(source):
    """A model source: the absolute path of a file or directory, else the name as given
    (a preset or `hf://owner/name`)."""
    source = str(source)
    return os.path.abspath(source) if os.path.exists(source) else source


def examples_settings(data):
    """`{"examples", "sha256"}` of a `TaskData` (or token / span records): their count and
    a hash of every field, so other examples of the same count tell apart."""
    if data is None:
        return None
    digest = hashlib.sha256()
    for field in dataclasses.fields(data):
        value = getattr(data, field.name)
        if isinstance(value, np.ndarray):
            value = [value.dtype.str, value.tolist()]
        digest.update(json.dumps([field.name, value], default=str).encode("utf-8"))
    return {"examples": len(data), "sha256": digest.hexdigest()[:_HEX]}


def _jsonable(settings):
    """`settings` as a checkpoint stores them (JSON; anything else as its text)."""
    return json.loads(json.dumps(settings, default=str))


def encoder_settings(encoder):
    """An encoder's configuration (architecture, dropout, `remat`) with its precision
    as the dtype policy's name; without its `name`, which Keras numbers per process,
    and without head sizes equal to hidden / heads (the default, and all that
    checkpoints written before `key_size` existed knew), so those still resume."""
    default_head_size = encoder.hidden_dim // encoder.num_heads
    config = {key: value for key, value in encoder.get_config().items()
              if key not in ("name", "trainable", "dtype")
              and not (key in ("key_size", "value_size") and value == default_head_size)}
    return _jsonable({**config, "precision": encoder.dtype_policy.name})


def model_settings(model):
    """A task model's head options with its encoder's settings (`encoder_settings`)."""
    if not hasattr(model, "encoder"):
        return encoder_settings(model)
    config = {key: value for key, value in model.get_config().items()
              if key not in ("name", "trainable", "dtype", "encoder")}
    return _jsonable({"class": type(model).__name__, **config,
                      "encoder": encoder_settings(model.encoder)})


def optimizer_settings(optimizer):
    """An optimizer's class and configuration: learning rate (or its schedule), weight
    decay, clipping, gradient accumulation ... (a loss-scale wrapper's inner one)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    try:
        config = optimizer.get_config()
    except NotImplementedError:  # a learning-rate schedule without `get_config`
        return {"class": type(optimizer).__name__}
    config = {key: value for key, value in config.items() if key != "name"}
    schedule = config.get("learning_rate")
    if isinstance(schedule, dict):  # a serialized LearningRateSchedule
        config["learning_rate"] = {"schedule": schedule.get("class_name"),
                                   **schedule.get("config", {})}
    return _jsonable({"class": type(optimizer).__name__, **config})


def _flatten(settings, prefix=""):
    """`{"model": {"num_layers": 2}}` -> `{"model.num_layers": 2}`."""
    flat = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def run_differences(old, new):
    """The settings two run fingerprints differ in, as `name: old -> new` (nested
    settings named by their path).

    >>> run_differences({"seq": 32, "model": {"num_layers": 2}},
    ...                 {"seq": 64, "model": {"num_layers": 2}})
    ['seq: 32 -> 64']
    """
    old, new = _flatten(old), _flatten(new)

    def shown(settings, key):
        return json.dumps(settings[key]) if key in settings else "(not set)"

    return [f"{key}: {shown(old, key)} -> {shown(new, key)}"
            for key in sorted(set(old) | set(new)) if shown(old, key) != shown(new, key)]
