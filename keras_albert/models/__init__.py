"""Encoder and task models."""

from keras_albert.models.encoder import Encoder
from keras_albert.models.tasks import (
    EncoderTask,
    MultipleChoiceClassifier,
    PretrainingModel,
    SequenceClassifier,
    SpanQuestionAnswerer,
    TokenClassifier,
)

__all__ = [
    "Encoder",
    "EncoderTask",
    "MultipleChoiceClassifier",
    "PretrainingModel",
    "SequenceClassifier",
    "SpanQuestionAnswerer",
    "TokenClassifier",
]
