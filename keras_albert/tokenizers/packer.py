"""Packs one or two segments of token ids into the encoders' three inputs."""

import numbers

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from keras_albert.tokenizers._base import _IdLayer

TRUNCATIONS = ("longest_first", "round_robin")
PAD_TO = ("fixed", "batch")


def check_packing_arguments(seq_length, truncation, pad_to):
    """Raises a ValueError for packing arguments `InputPacker` cannot use."""
    if not isinstance(seq_length, numbers.Integral) or seq_length < 2:
        raise ValueError(
            "`seq_length` must be an int >= 2 (room for [CLS] and [SEP]); "
            f"got seq_length={seq_length!r}."
        )
    if truncation not in TRUNCATIONS:
        raise ValueError(f"`truncation` must be one of {TRUNCATIONS}; got {truncation!r}.")
    if pad_to not in PAD_TO:
        raise ValueError(f"`pad_to` must be one of {PAD_TO}; got {pad_to!r}.")


class _LongestFirstTrimmer(tf_text.Trimmer):
    """transformers' `truncation="longest_first"` for one or two segments.

    It cuts the longer segment first. When both must be cut, the budget is split
    in half and an odd token goes to the segment that was longer (the second on a
    tie), as the `tokenizers` library does. `tf_text.ShrinkLongestTrimmer` always
    gives an odd token to the later segment, so it differs when the first is longer.
    """

    def __init__(self, max_seq_length):
        # A Python int, or a scalar tensor (the TF-Hub preprocessor's `seq_length`).
        self._max_seq_length = max_seq_length

    def generate_mask(self, segments):
        lengths = [segment.row_lengths() for segment in segments]
        budget = tf.maximum(tf.cast(self._max_seq_length, lengths[0].dtype), 0)
        if len(segments) == 1:
            keep = [tf.minimum(lengths[0], budget)]
        else:
            first, second = lengths
            # Closed form of "cut the longer one until it fits", as in `tokenizers`.
            half = budget // 2
            first_is_shorter = first <= second
            keep_first = tf.where(
                first_is_shorter,
                tf.minimum(first, half),
                tf.minimum(first, budget - tf.minimum(second, half)),
            )
            keep_second = tf.where(
                first_is_shorter,
                tf.minimum(second, budget - keep_first),
                tf.minimum(second, half),
            )
            keep = [keep_first, keep_second]
        return [
            tf.ragged.range(length) < n[:, tf.newaxis]
            for length, n in zip(lengths, keep)
        ]


@keras.saving.register_keras_serializable(package="keras_albert")
class InputPacker(_IdLayer):
    """Packs token ids as `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` and pads them.

    Call it with a list of one or two ragged int batches (one row per example; dense
    rank-1 tensors are one example). It returns a dict of int32 tensors
    `input_word_ids`, `input_mask` (1 on tokens, 0 on padding) and `input_type_ids`
    (0 up to the first `[SEP]`, 1 after it), each `[batch, width]`.

    Args:
        seq_length: the longest packed sequence, special tokens included.
        cls_id, sep_id, pad_id: the special token ids.
        truncation: how too-long inputs are cut: `"longest_first"` (as transformers:
            drop the last tokens of the longer segment first) or `"round_robin"`
            (give each segment one token of the budget in turn).
        pad_to: `"fixed"` pads every batch to `seq_length`; `"batch"` pads to the
            longest packed row of the batch, so that short batches are cheaper.

    Example:

    >>> import tensorflow as tf
    >>> from keras_albert.tokenizers import InputPacker
    >>> packer = InputPacker(seq_length=8, cls_id=2, sep_id=3)
    >>> a = tf.ragged.constant([[10, 11, 12, 13], [10]])
    >>> b = tf.ragged.constant([[20, 21, 22], [20]])
    >>> outputs = packer([a, b])  # the first row is cut to 3 + 2 tokens
    >>> outputs["input_word_ids"].numpy().tolist()
    [[2, 10, 11, 12, 3, 20, 21, 3], [2, 10, 3, 20, 3, 0, 0, 0]]
    >>> outputs["input_type_ids"].numpy().tolist()
    [[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0, 0, 0]]
    >>> outputs["input_mask"].numpy().tolist()
    [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]]
    """

    def __init__(
        self,
        seq_length,
        cls_id,
        sep_id,
        pad_id=0,
        truncation="longest_first",
        pad_to="fixed",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_packing_arguments(seq_length, truncation, pad_to)
        self.seq_length = int(seq_length)
        self.cls_id = int(cls_id)
        self.sep_id = int(sep_id)
        self.pad_id = int(pad_id)
        self.truncation = truncation
        self.pad_to = pad_to

    def _segments(self, inputs):
        """Returns `(list of ragged int32 batches, whether it was one example)`."""
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        if not 1 <= len(inputs) <= 2:
            raise ValueError(
                f"InputPacker packs one or two segments; got {len(inputs)} segments."
            )
        segments, single = [], False
        for segment in inputs:
            if isinstance(segment, (list, tuple)):
                segment = tf.ragged.constant(segment, dtype=tf.int32)
            if not isinstance(segment, tf.RaggedTensor):
                segment = tf.convert_to_tensor(segment)
                if segment.shape.rank == 1:
                    single = True
                    segment = segment[tf.newaxis]
                segment = tf.RaggedTensor.from_tensor(segment)
            segments.append(tf.cast(segment, tf.int32))
        return segments, single

    def call(self, inputs):
        segments, single = self._segments(inputs)
        budget = self.seq_length - len(segments) - 1
        if budget < 0:
            raise ValueError(
                f"seq_length={self.seq_length} is too short for {len(segments)} "
                f"segments: it needs at least {len(segments) + 1} for the special tokens."
            )
        if self.truncation == "longest_first":
            trimmer = _LongestFirstTrimmer(budget)
        else:
            trimmer = tf_text.RoundRobinTrimmer(budget)
        token_ids, type_ids = tf_text.combine_segments(
            trimmer.trim(segments),
            start_of_sequence_id=self.cls_id,
            end_of_segment_id=self.sep_id,
        )
        type_ids = tf.cast(type_ids, tf.int32)
        if self.pad_to == "fixed":
            word_ids, mask = tf_text.pad_model_inputs(token_ids, self.seq_length, self.pad_id)
            type_ids, _ = tf_text.pad_model_inputs(type_ids, self.seq_length, 0)
        else:
            word_ids = token_ids.to_tensor(self.pad_id)
            mask = tf.ones_like(token_ids).to_tensor(0)
            type_ids = type_ids.to_tensor(0)
        outputs = {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}
        if single:
            return {key: value[0] for key, value in outputs.items()}
        return outputs

    def compute_output_spec(self, inputs):
        first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        width = self.seq_length if self.pad_to == "fixed" else None
        shape = (width,) if len(first.shape) == 1 else (first.shape[0], width)
        return {
            key: keras.KerasTensor(shape, dtype="int32")
            for key in ("input_word_ids", "input_mask", "input_type_ids")
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "seq_length": self.seq_length,
                "cls_id": self.cls_id,
                "sep_id": self.sep_id,
                "pad_id": self.pad_id,
                "truncation": self.truncation,
                "pad_to": self.pad_to,
            }
        )
        return config
