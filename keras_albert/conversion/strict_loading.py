"""Strict loading, shared by every checkpoint converter.

Loading is strict: every source tensor must land in exactly one variable, every
variable must receive a value, and shapes must agree. Anything else is refused before
a single variable is written, so a model is never half loaded.

`assign_strictly` is the check itself. `build_from_checkpoint` builds our model for
a checkpoint whose tensors follow transformers' names (`transformers_names.py`) or a
renaming of them (a `CheckpointNaming`, as the TF1 converter's), and loads it.

>>> import numpy as np
>>> from keras_albert.models.encoder import Encoder
>>> encoder = Encoder.from_preset("bert_tiny")
>>> targets = [(variable.path, variable, False) for variable in encoder.weights]
>>> source = {variable.path: np.zeros(variable.shape) for variable in encoder.weights}
>>> encoder = assign_strictly(encoder, targets, source, "zeros")
"""

import numpy as np

from keras_albert.conversion.transformers_config import apply_overrides, check_family
from keras_albert.conversion.transformers_names import HEAD_NAMES, transformers_targets
from keras_albert.models.encoder import Encoder
from keras_albert.models.tasks import PretrainingModel


def to_numpy(value):
    """A NumPy array of `value` (an array or a torch tensor, read as float32)."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    return np.asarray(value)


def assign_strictly(model, targets, source, description):
    """Assigns `source` tensors to `targets` only if they match one to one.

    Args:
        model: the Keras model the targets belong to; every one of its weights
            must be a target.
        targets: `(name, variable, transpose)` triples.
        source: mapping of names to arrays (or torch tensors).
        description: what is loaded, for the error message (`"bert checkpoint"`).

    Raises:
        ValueError: naming every unmapped source tensor, every variable left
            without a value and every shape mismatch. Nothing is written then.
    """
    names = [name for name, _, _ in targets]
    if len(set(names)) != len(names):  # a bug in a name table, not in the checkpoint
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise RuntimeError(f"Duplicate target names: {duplicates}")
    if len({id(variable) for _, variable, _ in targets}) != len(targets):
        raise RuntimeError("A variable appears under two target names.")
    assignments, missing, mismatched = [], [], []
    for name, variable, transpose in targets:
        if name not in source:
            missing.append(f"{name} (for {variable.path})")
            continue
        value = to_numpy(source[name])
        expected = tuple(variable.shape)[::-1] if transpose else tuple(variable.shape)
        if tuple(value.shape) != expected:
            # Both shapes in the checkpoint's layout.
            mismatched.append(f"{name}: checkpoint {tuple(value.shape)}, expected {expected} "
                              f"for {variable.path}")
            continue
        assignments.append((variable, value.T if transpose else value))
    unused = sorted(set(source) - set(names))
    covered = {id(variable) for _, variable, _ in targets}
    uncovered = [v.path for v in model.weights if id(v) not in covered]
    problems = []
    if missing:
        problems.append(f"missing from the checkpoint: {missing}")
    if mismatched:
        problems.append(f"shape mismatches: {mismatched}")
    if unused:
        problems.append(f"checkpoint tensors with no place in the model: {unused}")
    if uncovered:
        problems.append(f"model variables this family has no tensor for: {uncovered}")
    if problems:
        raise ValueError(
            f"Refusing to load the {description} (nothing was loaded): " + "; ".join(problems)
        )
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))
    return model


class CheckpointNaming:
    """How a checkpoint format names transformers' tensors.

    This base class is the transformers naming itself (encoder names without the
    task-model prefix). Other formats subclass it: `target` renames each
    `(transformers name, transpose)` pair, and the prefixes say how the format
    names its pretraining heads and pooler.

    >>> CheckpointNaming("bert").is_sentence("cls.seq_relationship.weight")
    True
    """

    def __init__(self, family):
        heads = HEAD_NAMES[check_family(family)]
        self.family = family
        self.mlm_prefix = heads.mlm_prefix
        self.sentence_prefix = heads.sentence + "." if heads.sentence else None
        self.pooler_prefix = "pooler."

    def target(self, name, transpose):
        """The `(name, transpose)` this format uses for a transformers tensor."""
        return name, transpose

    def is_mlm(self, name):
        return name.startswith(self.mlm_prefix)

    def is_sentence(self, name):
        return self.sentence_prefix is not None and name.startswith(self.sentence_prefix)


def build_from_checkpoint(arguments, source, naming, heads=False, description="checkpoint",
                          **overrides):
    """Builds our model for `Encoder` `arguments` and loads `source` into it, strictly.

    Args:
        arguments: `Encoder` arguments read from the checkpoint's config.
        source: checkpoint tensor names (in `naming`) -> arrays.
        naming: a `CheckpointNaming` for the checkpoint's format and family.
        heads: False for an `Encoder`: the checkpoint's pretraining heads, recognised
            by name, are left out. True for a `PretrainingModel` with the
            checkpoint's masked-LM head and, if it has one, its SOP / NSP head.
        description: what is loaded, for messages.
        **overrides: `RUNTIME_OPTIONS` such as `dropout` or `remat`.

    Any source tensor without a place, variable without a value or shape mismatch
    is refused before anything is assigned.
    """
    has_mlm = any(naming.is_mlm(name) for name in source)
    has_sentence = any(naming.is_sentence(name) for name in source)
    if heads and not has_mlm:
        raise ValueError(
            f"heads=True, but the {description} has no masked-LM head (no tensor named "
            f"'{naming.mlm_prefix}...'); load it with heads=False."
        )
    if not heads:
        source = {
            name: value
            for name, value in source.items()
            if not (naming.is_mlm(name) or naming.is_sentence(name))
        }
    # transformers' *ForMaskedLM models are built without a pooler.
    if naming.family != "distilbert" and has_mlm and not has_sentence and not any(
        name.startswith(naming.pooler_prefix) for name in source
    ):
        arguments = {**arguments, "use_pooler": False}
    arguments = apply_overrides(arguments, overrides, description)
    encoder = Encoder(**arguments)
    model = PretrainingModel(encoder, sentence_order=has_sentence) if heads else encoder
    targets = []
    for name, variable, transpose in transformers_targets(model, naming.family):
        name, transpose = naming.target(name, transpose)
        targets.append((name, variable, transpose))
    return assign_strictly(model, targets, source, description)
