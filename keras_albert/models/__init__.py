"""Encoder and task models, and DistilBERT-style distillation."""

from keras_albert.models.distiller import Distiller
from keras_albert.models.encoder import Encoder
from keras_albert.models.student import student_from_teacher
from keras_albert.models.task_kinds import TASK_KINDS, task_model
from keras_albert.models.tasks import (
    EncoderTask,
    MultipleChoiceClassifier,
    PretrainingModel,
    SequenceClassifier,
    SpanQuestionAnswerer,
    TokenClassifier,
)

__all__ = [
    "TASK_KINDS",
    "Distiller",
    "Encoder",
    "EncoderTask",
    "MultipleChoiceClassifier",
    "PretrainingModel",
    "SequenceClassifier",
    "SpanQuestionAnswerer",
    "TokenClassifier",
    "student_from_teacher",
    "task_model",
]
