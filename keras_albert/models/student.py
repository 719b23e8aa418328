"""A DistilBERT-style student `Encoder` initialised from a teacher's layers.

`student_from_teacher(teacher, ...)` builds a shallower `Encoder` of the teacher's
width from a subset of the teacher's layers (every other one by default), as
DistilBERT was initialised from BERT (Sanh et al. 2019, arXiv:1910.01108). ALBERT
teachers keep their cross-layer sharing: the student copies the shared group(s) its
layers run.

Example:

    teacher = Encoder.from_preset("bert_tiny", num_layers=4)
    student = student_from_teacher(teacher)      # 2 layers: teacher layers 0 and 2
    classifier = SequenceClassifier(student, num_classes=2)
"""

import tensorflow as tf

from keras_albert.layers.transformer_stack import TransformerStack
from keras_albert.models.encoder import Encoder

__all__ = ["student_from_teacher"]


def _teacher_encoder(teacher):
    encoder = teacher if isinstance(teacher, Encoder) else getattr(teacher, "encoder", None)
    if not isinstance(encoder, Encoder):
        raise TypeError(
            "student_from_teacher expects an Encoder or a task model with an `.encoder` "
            f"Encoder; got {type(teacher).__name__}."
        )
    return encoder


def _default_teacher_layers(teacher_num_layers, num_layers):
    # floor(i * L / n): every other layer ([0, 2, 4, ...]) when n = L // 2, evenly
    # spaced layers for other depths.
    return [int(i * teacher_num_layers / num_layers) for i in range(num_layers)]


def _check_teacher_layers(teacher_layers, teacher_num_layers, num_layers):
    layers = []
    for layer in teacher_layers:
        if isinstance(layer, bool) or not hasattr(layer, "__index__"):
            raise ValueError(f"teacher_layers must hold integers; got {layer!r}.")
        layers.append(int(layer))
    if not layers:
        raise ValueError("teacher_layers must name at least one teacher layer.")
    if num_layers is not None and num_layers != len(layers):
        raise ValueError(
            f"num_layers={num_layers} but teacher_layers has {len(layers)} entries "
            f"({layers}); give one teacher layer per student layer."
        )
    bad = [layer for layer in layers if not 0 <= layer < teacher_num_layers]
    if bad:
        raise ValueError(
            f"teacher_layers {bad} out of range: the teacher has {teacher_num_layers} "
            f"layers (0 .. {teacher_num_layers - 1})."
        )
    return layers


def _slot_sources(teacher_stack, student_stack, teacher_layers):
    """Maps each student attention / feed-forward slot to the teacher slot it copies.

    Student layer `i` must run the weights teacher layer `teacher_layers[i]` ran, for
    every inner block. Both stacks say through their own `schedule` (and the block ->
    slot table built from it) which weight slot each block application uses. Returns
    `(attention, feedforward, conflicts)`: dicts student slot -> teacher slot, and a
    list of the student slots that would need two different teacher slots.
    """
    teacher_position = {
        (layer, inner): position
        for position, (layer, _, inner) in enumerate(teacher_stack.schedule)
    }
    sources = ({}, {})
    claimed = ({}, {})  # student slot -> the first student layer that copied into it
    conflicts, reported = [], set()
    for position, (layer, group, inner) in enumerate(student_stack.schedule):
        teacher_layer = teacher_layers[layer]
        teacher_slots = teacher_stack._block_indices[teacher_position[(teacher_layer, inner)]]
        student_slots = student_stack._block_indices[position]
        for part in (0, 1):
            student_slot, teacher_slot = student_slots[part], teacher_slots[part]
            previous = sources[part].setdefault(student_slot, teacher_slot)
            first_layer = claimed[part].setdefault(student_slot, layer)
            if previous != teacher_slot:
                teacher_keys = (
                    teacher_stack.attention_keys if part == 0 else teacher_stack.feedforward_keys
                )
                conflict = (
                    f"student layers {first_layer} and {layer} share weights (student "
                    f"group {group}) but teacher layers {teacher_layers[first_layer]} and "
                    f"{teacher_layer} do not ({teacher_keys[previous]} vs "
                    f"{teacher_keys[teacher_slot]})"
                )
                if (first_layer, layer) not in reported:
                    reported.add((first_layer, layer))
                    conflicts.append(conflict)
    return sources[0], sources[1], conflicts


def _plan_stack(config, num_groups):
    """An unbuilt stack of the student's shape: cheap, only its slot table is used."""
    return TransformerStack(
        num_layers=config["num_layers"],
        hidden_dim=config["hidden_dim"],
        num_heads=config["num_heads"],
        intermediate_dim=config["intermediate_dim"],
        key_size=config.get("key_size"),
        value_size=config.get("value_size"),
        num_groups=num_groups,
        inner_group_num=config["inner_group_num"],
        sharing=config["sharing"],
    )


def _assign(target, value, what):
    value = tf.convert_to_tensor(value)
    if tuple(target.shape) != tuple(value.shape):
        raise ValueError(
            f"Cannot copy {what}: the teacher's has shape {tuple(value.shape)}, the "
            f"student's {tuple(target.shape)} (did an override change the width?)."
        )
    target.assign(tf.cast(value, target.dtype))


def _copy_layer(source, target, what):
    if len(source.weights) != len(target.weights):
        raise ValueError(
            f"Cannot copy {what}: the teacher's has {len(source.weights)} weights, the "
            f"student's {len(target.weights)}."
        )
    for source_weight, target_weight in zip(source.weights, target.weights):
        if source_weight.name != target_weight.name:
            raise ValueError(
                f"Cannot copy {what}: weight {source_weight.path} does not correspond to "
                f"{target_weight.path}."
            )
        _assign(target_weight, source_weight.value, f"{what} ({source_weight.name})")


def student_from_teacher(
    teacher, num_layers=None, teacher_layers=None, token_types=False, pooler=False, **overrides
):
    """Builds a DistilBERT-style student `Encoder` initialised from a teacher's layers.

    The student has the teacher's width (hidden size H, embedding size E, heads,
    feed-forward size, vocabulary, positions, activation, LayerNorm epsilon), its
    dtype policy, remat and dropout settings, and `num_layers` layers, by default half
    the teacher's. Student layer `i` starts as a copy of teacher layer
    `teacher_layers[i]`; the default takes every other layer, `[0, 2, 4, ...]`
    (evenly spaced `int(i * L / num_layers)` for other depths). Pass `teacher_layers`
    to choose: DistilBERT's own initialisation script used `[0, 2, 4, 7, 9, 11]` for
    BERT-base (12 -> 6 layers).

    The word and position embeddings, the embedding LayerNorm and the E -> H
    projection (ALBERT) are copied. By default the student has no token types
    (`num_segments=0`) and no pooler (`use_pooler=False`), like DistilBERT; the
    teacher's token-type-0 embedding is then folded into the student's position
    embeddings (`position + type[0]`), so a student copying all teacher layers computes
    exactly the teacher's hidden states on single-segment (type 0) inputs. With
    `token_types=True` / `pooler=True` the student keeps them, copied from the teacher.

    Shared-weight teachers keep their sharing: the student has the teacher's `sharing`,
    `inner_group_num` and `min(num_groups, num_layers)` groups (override `num_groups`
    to choose), assigned to layers by the same contiguous rule
    (`int(l / num_layers * num_groups)`). Each student group copies the teacher group
    that its layers' teacher layers ran (with one group: ALBERT's single shared block,
    applied `num_layers` times). Unshared halves (`"attention"`/`"ffn"` sharing, or
    `"none"`) are copied per layer. When the chosen teacher layers need different
    teacher weights inside one student group, no assignment can express them and a
    `ValueError` says which `num_groups` would work.

    Args:
        teacher: an `Encoder`, or a task model with an `.encoder` (only the encoder is
            used; the student encoder is returned, to be wrapped in a task model).
        num_layers: student depth; `len(teacher_layers)` or half the teacher's if None.
        teacher_layers: the teacher layer each student layer copies.
        token_types: keep (copy) the teacher's token-type embeddings.
        pooler: keep (copy) the teacher's pooler.
        **overrides: other `Encoder` constructor arguments, e.g. `dropout=0.1`,
            `remat="full"`, `dtype="mixed_bfloat16"`, `num_groups=1`.

    Returns:
        A built `Encoder` holding the copied weights.
    """
    teacher = _teacher_encoder(teacher)
    for key in ("num_layers", "num_segments", "use_pooler"):
        if key in overrides:
            raise TypeError(
                f"Pass {'num_layers' if key == 'num_layers' else 'token_types= / pooler='} "
                f"instead of overriding {key!r}."
            )
    teacher_num_layers = teacher.num_layers
    if teacher_layers is None:
        if num_layers is None:
            num_layers = max(1, teacher_num_layers // 2)
        if not isinstance(num_layers, int) or not 1 <= num_layers <= teacher_num_layers:
            raise ValueError(
                f"num_layers must be an integer in 1 .. {teacher_num_layers} to pick "
                f"teacher layers by default; got {num_layers!r} (pass teacher_layers)."
            )
        teacher_layers = _default_teacher_layers(teacher_num_layers, num_layers)
    teacher_layers = _check_teacher_layers(teacher_layers, teacher_num_layers, num_layers)
    num_layers = len(teacher_layers)

    if token_types and not teacher.num_segments:
        raise ValueError("token_types=True, but the teacher has no token-type embeddings.")
    if pooler and teacher.pooler is None:
        raise ValueError("pooler=True, but the teacher has no pooler to copy.")

    config = teacher.get_config()
    for key in ("name", "trainable", "dtype"):
        config.pop(key, None)
    config.update(
        num_layers=num_layers,
        num_groups=min(teacher.num_groups, num_layers),
        num_segments=teacher.num_segments if token_types else 0,
        use_pooler=bool(pooler),
        dtype=teacher.dtype_policy.name,
    )
    config.update(overrides)
    if config["inner_group_num"] != teacher.inner_group_num or (
        config["sharing"] != teacher.sharing
    ):
        raise ValueError(
            "The student must keep the teacher's sharing and inner_group_num to copy its "
            f"blocks (teacher: sharing={teacher.sharing!r}, inner_group_num="
            f"{teacher.inner_group_num})."
        )

    # Check the slot assignment on an unbuilt stack before building anything.
    teacher_stack = teacher.transformer
    plan = _plan_stack(config, config["num_groups"])
    _, _, conflicts = _slot_sources(teacher_stack, plan, teacher_layers)
    if conflicts:
        working = [
            groups
            for groups in range(1, num_layers + 1)
            if not _slot_sources(teacher_stack, _plan_stack(config, groups), teacher_layers)[2]
        ]
        teacher_groups = [
            int(layer / teacher_num_layers * teacher.num_groups) for layer in teacher_layers
        ]
        hint = (
            f"num_groups={' or '.join(map(str, working))} would express them"
            if working
            else "no num_groups expresses them with the contiguous group assignment"
        )
        raise ValueError(
            f"teacher_layers={teacher_layers} cannot be copied into a {num_layers}-layer "
            f"student with sharing={config['sharing']!r} and num_groups="
            f"{config['num_groups']}: the teacher layers run teacher groups "
            f"{teacher_groups}, but student layers are assigned to groups by "
            f"int(l / {num_layers} * {config['num_groups']}): " + "; ".join(conflicts)
            + f". {hint}; or choose other teacher layers."
        )

    student = Encoder(**config)

    # === Embeddings ===
    source, target = teacher.embedding, student.embedding
    _assign(
        target.word_embeddings.embeddings,
        source.word_embeddings.embeddings.value,
        "the word embeddings",
    )
    positions = tf.cast(source.position_embeddings.value, tf.float32)
    if source.token_type_embeddings is not None and target.token_type_embeddings is None:
        positions = positions + tf.cast(
            source.token_type_embeddings.embeddings.value[0], tf.float32
        )
    length = target.max_sequence_length
    if length > positions.shape[0]:
        raise ValueError(
            f"The student's max_sequence_length ({length}) exceeds the teacher's "
            f"({positions.shape[0]}): there are no position embeddings to copy."
        )
    _assign(target.position_embeddings, positions[:length], "the position embeddings")
    if target.token_type_embeddings is not None:
        _assign(
            target.token_type_embeddings.embeddings,
            source.token_type_embeddings.embeddings.value,
            "the token-type embeddings",
        )
    _copy_layer(source.layer_norm, target.layer_norm, "the embedding LayerNorm")
    if (source.projection is None) != (target.projection is None):
        raise ValueError("The student and teacher must both have, or both lack, an E -> H "
                         "projection (do not override embedding_dim).")
    if source.projection is not None:
        _copy_layer(source.projection, target.projection, "the embedding projection")

    # === Blocks ===
    attention, feedforward, _ = _slot_sources(teacher_stack, student.transformer, teacher_layers)
    for student_slot, teacher_slot in attention.items():
        _copy_layer(
            teacher_stack.attention_layers[teacher_slot],
            student.transformer.attention_layers[student_slot],
            f"attention {teacher_stack.attention_keys[teacher_slot]}",
        )
    for student_slot, teacher_slot in feedforward.items():
        _copy_layer(
            teacher_stack.feedforward_layers[teacher_slot],
            student.transformer.feedforward_layers[student_slot],
            f"feed-forward {teacher_stack.feedforward_keys[teacher_slot]}",
        )

    if pooler:
        _copy_layer(teacher.pooler, student.pooler, "the pooler")
    return student
