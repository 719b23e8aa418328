"""Packs one or two segments of token ids into the encoders' three inputs."""

import numbers

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from keras_albert.tokenizers._base import _IdLayer

TRUNCATIONS = ("longest_first", "round_robin", "head_tail")
PAD_TO = ("fixed", "batch")


def head_tokens_for(seq_length, truncation, head_tokens=None):
    """The head kept by head+tail truncation: `head_tokens`, by default a quarter of a
    single text's room, `seq_length - 2`, rounded (128 at 512, Sun et al.'s best
    split; 64 at 256); None for the other truncations."""
    if truncation != "head_tail":
        return None
    return round((seq_length - 2) / 4) if head_tokens is None else int(head_tokens)


def check_packing_arguments(seq_length, truncation, pad_to, head_tokens=None):
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
    if head_tokens is not None:
        if truncation != "head_tail":
            raise ValueError(f"`head_tokens` applies to truncation='head_tail' only; "
                             f"truncation is {truncation!r}.")
        if (not isinstance(head_tokens, numbers.Integral) or isinstance(head_tokens, bool)
                or not 0 <= head_tokens <= seq_length - 2):
            raise ValueError(f"`head_tokens` must be an int in [0, {seq_length - 2}] "
                             f"(seq_length - 2); got {head_tokens!r}.")


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
        lengths, keep = self.kept_lengths(segments)
        return [
            tf.ragged.range(length) < n[:, tf.newaxis]
            for length, n in zip(lengths, keep)
        ]

    def kept_lengths(self, segments):
        """`(lengths, kept)`: each segment's row lengths and how many tokens it keeps."""
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
        return lengths, keep


class _HeadTailTrimmer(_LongestFirstTrimmer):
    """Keeps the first `head_tokens` and the last tokens of each cut segment.

    Each segment keeps as many tokens as `_LongestFirstTrimmer` gives it; of a segment
    that is cut, the first `min(head_tokens, kept)` and the last `kept - that` stay
    (Sun et al. 2019, "How to Fine-Tune BERT for Text Classification": on long
    reviews the end says as much as the beginning). Segments that fit are untouched.
    """

    def __init__(self, max_seq_length, head_tokens):
        super().__init__(max_seq_length)
        self._head_tokens = head_tokens

    def generate_mask(self, segments):
        lengths, keep = self.kept_lengths(segments)
        masks = []
        for length, kept in zip(lengths, keep):
            head = tf.minimum(tf.cast(self._head_tokens, kept.dtype), kept)
            tail_start = length - (kept - head)
            positions = tf.ragged.range(length)
            masks.append((positions < head[:, tf.newaxis])
                         | (positions >= tail_start[:, tf.newaxis]))
        return masks


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
            drop the last tokens of the longer segment first), `"round_robin"`
            (give each segment one token of the budget in turn) or `"head_tail"`
            (each segment keeps as many tokens as with `"longest_first"`, but a cut
            one keeps its first `head_tokens` and its last ones, dropping the middle).
        head_tokens: with `"head_tail"`, the first tokens a cut segment keeps;
            default `round((seq_length - 2) / 4)` (128 at 512, as Sun et al. 2019).
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
    >>> head_tail = InputPacker(seq_length=7, cls_id=2, sep_id=3, truncation="head_tail",
    ...                         head_tokens=2)
    >>> head_tail([tf.ragged.constant([[10, 11, 12, 13, 14, 15, 16]])])[
    ...     "input_word_ids"].numpy().tolist()  # first 2 and last 3 of 7 tokens
    [[2, 10, 11, 14, 15, 16, 3]]
    """

    def __init__(
        self,
        seq_length,
        cls_id,
        sep_id,
        pad_id=0,
        truncation="longest_first",
        pad_to="fixed",
        head_tokens=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_packing_arguments(seq_length, truncation, pad_to, head_tokens)
        self.seq_length = int(seq_length)
        self.cls_id = int(cls_id)
        self.sep_id = int(sep_id)
        self.pad_id = int(pad_id)
        self.truncation = truncation
        self.pad_to = pad_to
        self.head_tokens = head_tokens_for(self.seq_length, truncation, head_tokens)

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
        elif self.truncation == "head_tail":
            trimmer = _HeadTailTrimmer(budget, self.head_tokens)
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
                "head_tokens": self.head_tokens,
            }
        )
        return config
