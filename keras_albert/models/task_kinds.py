"""The task kinds that fine-tuning knows, and the task model for each.

This is the one table of kinds: `keras_albert.training.finetune` builds its models
with `task_model`, and each model's `compile()` picks the loss and metrics of its
kind (a loss or metrics you pass win):

| kind             | model                             | "auto" loss                      | "auto" metrics              |
|------------------|-----------------------------------|----------------------------------|-----------------------------|
| `classification` | `SequenceClassifier(num_classes)` | sparse cross-entropy from logits | accuracy (+ F1 if 2), MCC   |
| `regression`     | `SequenceClassifier(1)`           | mean squared error               | Pearson                     |
| `multilabel`     | `SequenceClassifier(num_labels)`  | ZLPR (`keras_albert.losses`)     | micro F1                    |
| `token`          | `TokenClassifier(num_classes)`    | sparse CE, label -100 ignored    | accuracy on labelled tokens |
| `span`           | `SpanQuestionAnswerer()`          | sparse CE on start and on end    | start / end accuracy        |

Every model's `task` attribute is its kind. `optimizer="auto"` is AdamW at 5e-5.

Example:

>>> from keras_albert.models.encoder import Encoder
>>> model = task_model(Encoder.from_preset("bert_tiny"), "token", num_classes=5)
>>> model.task
'token'
>>> model.compile()  # sparse CE without label -100, token accuracy, AdamW 5e-5
"""

from keras_albert.models.tasks import (
    SEQUENCE_TASKS,
    SequenceClassifier,
    SpanQuestionAnswerer,
    TokenClassifier,
)

TASK_KINDS = SEQUENCE_TASKS + ("token", "span")


def task_model(encoder, kind, num_classes=None, dropout=0.1, pooling="pooled"):
    """The task model of `kind` (one of `TASK_KINDS`) on top of `encoder`.

    `num_classes` is the number of classes (classification, token) or labels
    (multilabel); a regressor has one output and span QA none. `dropout` is the
    head's; `pooling` is the sequence classifier's (see `SequenceClassifier`).

    >>> from keras_albert.models.encoder import Encoder
    >>> task_model(Encoder.from_preset("bert_tiny"), "regression").num_classes
    1
    """
    if kind not in TASK_KINDS:
        raise ValueError(f"Unknown task {kind!r}; expected one of {TASK_KINDS}.")
    if kind == "span":
        return SpanQuestionAnswerer(encoder)
    if kind == "regression":
        return SequenceClassifier(encoder, num_classes=1, dropout=dropout, pooling=pooling,
                                  task=kind)
    if not num_classes or num_classes < 2 and kind != "multilabel":
        raise ValueError(f"task={kind!r} needs num_classes >= 2; got {num_classes}.")
    if kind == "token":
        return TokenClassifier(encoder, num_classes=num_classes, dropout=dropout)
    return SequenceClassifier(encoder, num_classes=num_classes, dropout=dropout,
                              pooling=pooling, task=kind)
