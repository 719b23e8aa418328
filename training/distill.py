"""DistilBERT-style knowledge distillation (Sanh et al. 2019, arXiv:1910.01108).

Three pieces:

- `student_from_teacher(teacher, ...)`: a shallower `Encoder` of the teacher's width,
  initialised from a subset of the teacher's layers (every other one by default), as
  DistilBERT was initialised from BERT. ALBERT teachers keep their cross-layer sharing:
  the student copies the shared group(s) its layers run.
- `distillation_losses(...)`: the three DistilBERT terms as a pure TensorFlow function:
  the soft-target loss `ce` (T^2 * KL at temperature T), the `hard` loss on the true
  labels (masked-LM or task) and the cosine loss `cos` between last hidden states.
- `Distiller`: a `keras.Model` that trains a student task model against a frozen teacher
  task model with plain `model.fit` (also under `tf.distribute.MirroredStrategy`,
  `MultiWorkerMirroredStrategy` through `keras_albert.models.distributed`'s mixin, and
  mixed precision); `distiller.student` is then the trained model, usable alone.

Example (masked-LM distillation of a BERT teacher into a 6-layer student):

    teacher = PretrainingModel(Encoder.from_preset("bert_base"), sentence_order=False)
    student = PretrainingModel(student_from_teacher(teacher), sentence_order=False)
    distiller = Distiller(teacher, student)          # T=2, alphas 5 / 2 / 1
    distiller.compile(optimizer=keras.optimizers.AdamW(5e-4))
    distiller.fit(dataset)    # (features with masked_positions, {"mlm_logits": ids},
                              #  {"mlm_logits": weights}) batches
    student.save("student.keras")
"""

import keras
import tensorflow as tf

from keras_albert.layers.transformer_stack import TransformerStack
from keras_albert.models.distributed import MultiWorkerFitMixin
from keras_albert.models.encoder import Encoder
from keras_albert.models.tasks import PretrainingModel, SequenceClassifier

__all__ = ["Distiller", "distill", "distillation_losses", "student_from_teacher"]

LOSS_TERMS = ("ce", "hard", "cos")


# --------------------------------------------------------------------------------------
# Student initialisation
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------


def _loss_sums_and_counts(
    teacher_logits,
    student_logits,
    labels,
    teacher_hidden,
    student_hidden,
    mask,
    temperature,
    label_weights=None,
):
    """Sums and denominators of the three terms (`distillation_losses` divides them).

    Kept apart so that `Distiller` can divide by denominators summed over all replicas,
    which makes data-parallel training equal to one device on the global batch even
    when replicas hold different numbers of masked positions or real tokens.
    """
    teacher_logits = tf.cast(teacher_logits, tf.float32)
    student_logits = tf.cast(student_logits, tf.float32)
    prediction_shape = tf.shape(student_logits)[:-1]
    if label_weights is None:
        weights = tf.ones(prediction_shape, tf.float32)
    else:
        weights = tf.reshape(tf.cast(label_weights, tf.float32), prediction_shape)
    predicted = tf.cast(weights > 0, tf.float32)

    regression = student_logits.shape.rank == 2 and student_logits.shape[-1] == 1
    if regression:
        # One output: softmax is constant, so the soft-target term is the squared
        # difference to the teacher's prediction (no temperature) and the hard term
        # the squared error to the label.
        ce_each = tf.square(student_logits[:, 0] - teacher_logits[:, 0])
        labels = tf.reshape(tf.cast(labels, tf.float32), prediction_shape)
        hard_each = tf.square(student_logits[:, 0] - labels)
    else:
        temperature = tf.cast(temperature, tf.float32)
        teacher_log_probs = tf.nn.log_softmax(teacher_logits / temperature, axis=-1)
        student_log_probs = tf.nn.log_softmax(student_logits / temperature, axis=-1)
        kl = tf.reduce_sum(
            tf.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1
        )
        ce_each = temperature**2 * kl
        labels = tf.reshape(tf.cast(labels, tf.int32), prediction_shape)
        hard_each = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=student_logits
        )

    token_mask = tf.cast(mask, tf.float32)
    if teacher_hidden is None or student_hidden is None:
        cos_each = tf.zeros_like(token_mask)
    else:
        teacher_unit = tf.math.l2_normalize(tf.cast(teacher_hidden, tf.float32), axis=-1)
        student_unit = tf.math.l2_normalize(tf.cast(student_hidden, tf.float32), axis=-1)
        cos_each = 1.0 - tf.reduce_sum(teacher_unit * student_unit, axis=-1)

    sums = {
        "ce": tf.reduce_sum(ce_each * predicted),
        "hard": tf.reduce_sum(hard_each * weights),
        "cos": tf.reduce_sum(cos_each * token_mask),
    }
    counts = {
        "ce": tf.reduce_sum(predicted),
        "hard": tf.reduce_sum(weights),
        "cos": tf.reduce_sum(token_mask),
    }
    return sums, counts


def distillation_losses(
    teacher_logits,
    student_logits,
    labels,
    teacher_hidden,
    student_hidden,
    mask,
    temperature,
    label_weights=None,
):
    """DistilBERT's three loss terms, in float32.

    Args:
        teacher_logits, student_logits: masked-LM logits [B, M, V] or task logits
            [B, C] (C = 1: regression).
        labels: true labels: token ids [B, M] (masked-LM), class ids [B] (task) or
            targets [B] / [B, 1] (regression).
        teacher_hidden, student_hidden: last hidden states [B, S, H].
        mask: [B, S], 1 for real tokens, 0 for padding.
        temperature: the softmax temperature T of the soft targets.
        label_weights: [B, M] masked-LM weights or [B] example weights; None: all 1.

    Returns:
        A dict of scalars:
        - `ce`: `T^2 * KL(softmax(teacher / T) || softmax(student / T))`, the mean over
          predictions with weight > 0 (masked positions, or examples). For regression
          (one output) it is the squared difference to the teacher's output instead,
          since a softmax over one output is constant.
        - `hard`: the student's cross-entropy (T = 1) with the labels, the
          `label_weights`-weighted mean (sum(w * loss) / sum(w): with 0/1 weights the
          mean over masked positions, like DistilBERT's masked-LM loss); mean squared
          error for regression.
        - `cos`: the mean over real tokens of `1 - cosine(teacher_hidden,
          student_hidden)`, DistilBERT's cosine embedding loss with target 1.
    """
    sums, counts = _loss_sums_and_counts(
        teacher_logits,
        student_logits,
        labels,
        teacher_hidden,
        student_hidden,
        mask,
        temperature,
        label_weights,
    )
    return {name: tf.math.divide_no_nan(sums[name], counts[name]) for name in LOSS_TERMS}


# --------------------------------------------------------------------------------------
# Distiller
# --------------------------------------------------------------------------------------


def _replica_sum(values):
    """Sums a dict of scalars over the replicas of the current strategy (if any)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    names = sorted(values)
    summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [values[name] for name in names])
    return dict(zip(names, summed))


def _num_replicas():
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def _task_kind(model):
    if isinstance(model, PretrainingModel):
        return "masked_lm"
    if isinstance(model, SequenceClassifier):
        return "classification"
    return None


def _first(structure, key):
    """`structure[key]` for a dict (None if absent), the structure itself otherwise."""
    if isinstance(structure, dict):
        return structure.get(key)
    return structure


@keras.saving.register_keras_serializable(package="keras_albert")
class Distiller(MultiWorkerFitMixin, keras.Model):
    """Trains a student task model to imitate a frozen teacher (DistilBERT's recipe).

    The loss of a batch is `alpha_ce * ce + alpha_hard * hard + alpha_cos * cos`
    (see `distillation_losses`), DistilBERT's defaults: T = 2, alpha_ce = 5,
    alpha_hard = 2 (DistilBERT's `alpha_mlm`; `alpha_mlm=` is accepted as another name)
    and alpha_cos = 1.

    `teacher` and `student` are task models of the same kind:
    - two `PretrainingModel`s: masked-LM distillation. Batches are
      `(x, y, sample_weight)` with `x` the encoder inputs plus `masked_positions`,
      `y = {"mlm_logits": ids [B, M], ...}` and `sample_weight = {"mlm_logits":
      weights [B, M]}` (the batches the student would train on by itself); the
      sentence-order outputs, if any, are ignored.
    - two `SequenceClassifier`s: task distillation from a fine-tuned teacher;
      batches `(x, y)` with `y` class ids [B] (targets for `num_classes=1`) and optional
      example weights.

    The teacher is frozen (`trainable=False`) and runs with `training=False`; only the
    student's trainable variables get gradients. Each step calls the models' encoders
    and heads directly, so the hidden states for the cosine term come from the same
    forward pass as the logits. Encoders without token types ignore
    `input_type_ids`; encoders with them get zeros when the batch has none.

    `call` returns the student's outputs, so `predict` gives the student's logits;
    `fit` / `evaluate` log `loss`, `ce_loss`, `hard_loss`, `cos_loss` and the
    student's `accuracy` (not for regression). Loss scaling happens when the optimizer
    is a `keras.optimizers.LossScaleOptimizer` (`compile` wraps it by itself when the
    student's policy is `"mixed_float16"`). Under `tf.distribute` strategies each term
    is divided by its denominator summed over the replicas, so data-parallel training
    equals one device on the global batch.

    After training, `distiller.student` is the trained task model.
    """

    def __init__(
        self,
        teacher,
        student,
        temperature=2.0,
        alpha_ce=5.0,
        alpha_hard=2.0,
        alpha_cos=1.0,
        alpha_mlm=None,
        **kwargs,
    ):
        kwargs.pop("dtype", None)
        super().__init__(**kwargs)
        kind = _task_kind(teacher)
        if kind is None or _task_kind(student) != kind:
            raise TypeError(
                "Distiller needs a teacher and a student of the same kind: two "
                "PretrainingModels or two SequenceClassifiers; got "
                f"{type(teacher).__name__} and {type(student).__name__}."
            )
        if teacher is student:
            raise ValueError("The teacher and the student must be different models.")
        if alpha_mlm is not None:
            if alpha_hard not in (2.0, alpha_mlm):
                raise ValueError(
                    f"alpha_mlm ({alpha_mlm}) and alpha_hard ({alpha_hard}) name the same "
                    "weight; pass one of them."
                )
            alpha_hard = alpha_mlm
        if kind == "masked_lm":
            teacher_vocabulary = teacher.encoder.vocabulary_size
            if teacher_vocabulary != student.encoder.vocabulary_size:
                raise ValueError(
                    "Masked-LM distillation needs one vocabulary: the teacher has "
                    f"{teacher_vocabulary} tokens, the student "
                    f"{student.encoder.vocabulary_size}."
                )
        else:
            classes = (teacher.head.num_outputs, student.head.num_outputs)
            if classes[0] != classes[1]:
                raise ValueError(
                    f"The teacher predicts {classes[0]} classes, the student {classes[1]}."
                )
        self.use_cosine = teacher.encoder.hidden_dim == student.encoder.hidden_dim
        if alpha_cos and not self.use_cosine:
            raise ValueError(
                "The cosine loss compares hidden states, so it needs the same hidden "
                f"size (teacher {teacher.encoder.hidden_dim}, student "
                f"{student.encoder.hidden_dim}); pass alpha_cos=0."
            )

        # Keras's TF-backend attribute tracking skips `x.trainable = False` when
        # `x.trainable` is already False (`getattr(x, name) is value`), so a teacher
        # rebuilt from a config with trainable=False would keep trainable sublayers:
        # set True first so that False reaches every sublayer and variable.
        teacher.trainable = True
        teacher.trainable = False
        self.teacher = teacher
        self.student = student
        self.kind = kind
        self.regression = kind == "classification" and student.head.num_outputs == 1
        self.temperature = float(temperature)
        self.alpha_ce = float(alpha_ce)
        self.alpha_hard = float(alpha_hard)
        self.alpha_cos = float(alpha_cos)
        # The student's policy: `compile` adds loss scaling for "mixed_float16".
        self.dtype_policy = student.dtype_policy

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.term_trackers = {
            name: keras.metrics.Mean(name=f"{name}_loss") for name in LOSS_TERMS
        }
        self.accuracy_metric = None
        if not self.regression:
            self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.built = True

    @property
    def alpha_mlm(self):
        """DistilBERT's name for `alpha_hard`."""
        return self.alpha_hard

    @property
    def metrics(self):
        metrics = [self.loss_tracker] + [self.term_trackers[name] for name in LOSS_TERMS]
        if self.accuracy_metric is not None:
            metrics.append(self.accuracy_metric)
        return metrics

    # === Forward ===

    def _model_inputs(self, model, x):
        keys = list(model.encoder.input_keys)
        inputs = {}
        for key in keys:
            if key in x:
                inputs[key] = x[key]
            elif key == "input_type_ids":
                inputs[key] = tf.zeros_like(x["input_word_ids"])
            else:
                raise ValueError(
                    f"The batch lacks {key!r}; it has {sorted(x)} (expected the encoder "
                    "inputs" + (" and masked_positions)." if self.kind == "masked_lm" else ").")
                )
        if self.kind == "masked_lm":
            if "masked_positions" not in x:
                raise ValueError("Masked-LM distillation needs 'masked_positions' in x.")
            inputs["masked_positions"] = x["masked_positions"]
        return inputs

    def _forward(self, model, x, training):
        """Logits and last hidden states of one task model, in one pass."""
        inputs = self._model_inputs(model, x)
        encoded = model.encoder(
            {key: inputs[key] for key in model.encoder.input_keys}, training=training
        )
        hidden = encoded["sequence_output"]
        if self.kind == "masked_lm":
            logits = model.mlm_head(hidden, inputs["masked_positions"])
        else:
            logits = model.head(model.pool(encoded, inputs["input_mask"]), training=training)
        return logits, hidden

    def call(self, inputs, training=None):
        if not isinstance(inputs, dict):
            raise TypeError(f"Distiller expects a dict of inputs; got {type(inputs).__name__}.")
        return self.student(self._model_inputs(self.student, inputs), training=training)

    def _teacher_outputs(self, x):
        """The frozen teacher's logits and last hidden states (training=False)."""
        logits, hidden = self._forward(self.teacher, x, training=False)
        return tf.stop_gradient(logits), tf.stop_gradient(hidden)

    def _terms(self, x, y, sample_weight, teacher_outputs, training):
        """Per-replica loss contributions (they sum to the global batch's losses over
        replicas), the student's logits, labels and label weights."""
        teacher_logits, teacher_hidden = teacher_outputs
        student_logits, student_hidden = self._forward(self.student, x, training=training)
        labels = _first(y, "mlm_logits")
        weights = _first(sample_weight, "mlm_logits") if sample_weight is not None else None
        if labels is None:
            raise ValueError("Distillation needs labels: y = {'mlm_logits': ids [B, M]} for "
                             "masked-LM, class ids [B] for tasks.")
        mask = x["input_mask"]
        sums, counts = _loss_sums_and_counts(
            teacher_logits,
            student_logits,
            labels,
            teacher_hidden if self.use_cosine else None,
            student_hidden if self.use_cosine else None,
            mask,
            self.temperature,
            weights,
        )
        counts = _replica_sum(counts)
        terms = {name: tf.math.divide_no_nan(sums[name], counts[name]) for name in LOSS_TERMS}
        terms["loss"] = (
            self.alpha_ce * terms["ce"]
            + self.alpha_hard * terms["hard"]
            + self.alpha_cos * terms["cos"]
        )
        return terms, student_logits, labels, weights

    def _update_metrics(self, terms, student_logits, labels, weights):
        # Metrics are kept per replica and averaged over replicas when read: record each
        # replica's contribution times the number of replicas, whose mean is the sum.
        replicas = float(_num_replicas())
        self.loss_tracker.update_state(terms["loss"] * replicas)
        for name in LOSS_TERMS:
            self.term_trackers[name].update_state(terms[name] * replicas)
        if self.accuracy_metric is not None:
            self.accuracy_metric.update_state(labels, student_logits, sample_weight=weights)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        # The teacher runs before the tape opens: nothing of it is kept for gradients.
        teacher_outputs = self._teacher_outputs(x)
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            terms, student_logits, labels, weights = self._terms(
                x, y, sample_weight, teacher_outputs, training=True
            )
            loss = terms["loss"]
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)  # LossScaleOptimizer: times scale
        gradients = tape.gradient(loss, variables)
        # Variables that do not reach the distillation outputs (a sentence-order head,
        # an unused pooler) get no gradient and are left alone.
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        if not pairs:
            raise ValueError("No student variable received a gradient.")
        # `apply` sums gradients over replicas and, for a LossScaleOptimizer, unscales
        # them and skips the step when they are not finite.
        self.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        return self._update_metrics(terms, student_logits, labels, weights)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        terms, student_logits, labels, weights = self._terms(
            x, y, sample_weight, self._teacher_outputs(x), training=False
        )
        return self._update_metrics(terms, student_logits, labels, weights)

    def distillation_losses(self, x, y, sample_weight=None, training=False):
        """The loss terms of one batch (`ce`, `hard`, `cos`, `loss`), outside `fit`."""
        terms, _, _, _ = self._terms(
            x, y, sample_weight, self._teacher_outputs(x), training=training
        )
        return terms

    # === Config ===

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "student": keras.saving.serialize_keras_object(self.student),
            "temperature": self.temperature,
            "alpha_ce": self.alpha_ce,
            "alpha_hard": self.alpha_hard,
            "alpha_cos": self.alpha_cos,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("teacher", "student"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def distill(
    teacher,
    train_data,
    output_dir,
    optimizer,
    student_layers=None,
    teacher_layers=None,
    temperature=2.0,
    alpha_ce=5.0,
    alpha_mlm=2.0,
    alpha_cos=1.0,
    seq_length=128,
    epochs=3,
    batch_size=32,
    eval_data=None,
    seed=0,
    max_steps=None,
    resume=True,
    checkpoint_every=None,
    steps_per_execution=1,
    jit_compile=False,
    verbose="auto",
    **student_overrides,
):
    """Distils a fine-tuned classifier into a shallower student, from files to files.

    `teacher` is a `keras-albert finetune` output directory or its `model.keras` (a
    `SequenceClassifier` with its tokenizer files beside it). The student is
    `student_from_teacher(teacher.encoder, student_layers, teacher_layers)` under the
    teacher's head (copied), keeping the pooler, and token types when `train_data` has
    text pairs; `student_overrides` go to the student's config (`remat`, `dtype`).
    It trains with `Distiller` (DistilBERT's three terms) on `train_data`, with the
    checkpoints, exact resumption and logs of `keras_albert.training.finetune.finetune` (whose
    arguments these are), then writes `output_dir/model.keras` (the student alone), its
    tokenizer and `summary.json`; with `eval_data`, the summary compares teacher and
    student. Call it inside `strategy.scope()` to distribute. Returns the summary.

        summary = distill("runs/sst2_teacher", train, "runs/sst2_student",
                          keras.optimizers.AdamW(1e-4), max_steps=200, eval_data=dev)
    """
    import pathlib

    from keras_albert.conversion.huggingface import tokenizer_from_directory
    from keras_albert.metrics import evaluate_predictions
    from keras_albert.tokenizers import Preprocessor
    from keras_albert.training.finetune import fit_on_task_stream, predict_task, save_run

    if train_data.task not in ("classification", "regression"):
        raise ValueError("distill supports classification and regression teachers; "
                         f"{train_data.task} distillation is not implemented.")
    teacher_path = pathlib.Path(teacher)
    teacher_file = teacher_path / "model.keras" if teacher_path.is_dir() else teacher_path
    if not teacher_file.is_file():
        raise FileNotFoundError(f"No teacher model at {teacher_file}.")
    tokenizer = tokenizer_from_directory(teacher_file.parent)
    if tokenizer is None:
        raise ValueError(f"No spiece.model or vocab.txt beside {teacher_file}.")
    teacher = keras.saving.load_model(teacher_file, compile=False)
    if not isinstance(teacher, SequenceClassifier):
        raise ValueError(f"{teacher_file} is not a fine-tuned SequenceClassifier.")
    preprocessor = Preprocessor(
        tokenizer, seq_length=min(seq_length, teacher.encoder.max_sequence_length))
    # The teacher's head was trained on tanh(pooler(first token)): keep the pooler,
    # and keep token types when the task has text pairs.
    student_encoder = student_from_teacher(
        teacher.encoder, num_layers=student_layers, teacher_layers=teacher_layers,
        pooler=teacher.encoder.use_pooler,
        token_types=train_data.num_segments == 2 and teacher.encoder.num_segments > 0,
        **student_overrides)
    student = SequenceClassifier(student_encoder, **{
        key: value for key, value in teacher.get_config().items()
        if key in ("num_classes", "dropout", "hidden_dim")})
    student.head.set_weights(teacher.head.get_weights())
    distiller = Distiller(teacher, student, temperature=temperature, alpha_ce=alpha_ce,
                          alpha_mlm=alpha_mlm, alpha_cos=alpha_cos)

    def compile_model(chosen_optimizer, steps_per_execution):
        distiller.compile(optimizer=chosen_optimizer, jit_compile=jit_compile,
                          steps_per_execution=steps_per_execution)

    run = fit_on_task_stream(
        distiller, compile_model, optimizer, train_data, preprocessor, output_dir, epochs=epochs,
        batch_size=batch_size, seed=seed, max_steps=max_steps, resume=resume,
        checkpoint_every=checkpoint_every, steps_per_execution=steps_per_execution,
        verbose=verbose)
    work_dir = run.pop("work_dir")
    summary = {"teacher_layers": teacher.encoder.num_layers,
               "student_layers": student_encoder.num_layers,
               "teacher_params": int(teacher.encoder.count_params()),
               "student_params": int(student_encoder.count_params()),
               **run}
    if eval_data is not None:
        for name, model in (("teacher", teacher), ("student", student)):
            summary[f"{name}_eval"] = evaluate_predictions(
                train_data.task, predict_task(model, eval_data, preprocessor),
                eval_data.labels)
    save_run(student, summary, work_dir, output_dir)
    return summary
