"""Fine-tuning metrics: streaming Keras metrics on logits, and NumPy end-of-run reports.

Keras metrics (for `model.compile(metrics=...)`; graph-compatible, reset each epoch,
serializable with `get_config`), all taking the model's logits:

- `SparseF1`: binary F1 of the positive class from sparse labels and [B, 2] logits
  (argmax) or [B, 1] logits (> 0).
- `MatthewsCorrelation`: Matthews correlation (multi-class, Gorodkin's R_K) from a
  streaming confusion matrix.
- `PearsonCorrelation`: Pearson's r of [B] or [B, 1] predictions over everything seen,
  merged batch by batch (Chan et al.), so it equals the one-shot value.
  `keras.metrics.PearsonCorrelation` (Keras 3.15) is not that: it averages the
  per-batch correlations (a `MeanMetricWrapper`), which differs from the correlation
  over the whole evaluation set.
- `MultiLabelF1`: micro-averaged F1 of multi-label logits thresholded at `threshold`.
- `TokenAccuracy`: accuracy of per-token logits over tokens labelled other than
  `IGNORE_LABEL` (-100); it lives, with the token-classification and span-QA
  reports, in `keras_albert.token_span_metrics`.

Spearman's rho needs the ranks of the whole set, so it, and the same measures as
plain functions on NumPy arrays (`accuracy`, `f1`, `matthews`, `pearson`,
`spearman`, `micro_f1`, `exact_match`), are here for end-of-evaluation reports;
`evaluate_predictions(task, logits, labels)` gives the usual set per task (token
classification and span QA included).

Conventions: an undefined value (no positive examples for F1, a constant input for a
correlation) is 0.0 in the Keras metrics; the NumPy functions return 0.0 for F1 and
MCC (as scikit-learn) and NaN for a correlation of a constant input (as SciPy).
"""

import keras
import numpy as np
from keras import ops

from keras_albert.token_span_metrics import IGNORE_LABEL  # noqa: F401 (its public home)
from keras_albert.token_span_metrics import TokenAccuracy  # noqa: F401
from keras_albert.token_span_metrics import evaluate_span_predictions
from keras_albert.token_span_metrics import evaluate_token_predictions

# --------------------------------------------------------------------------- helpers


def _flat_labels(y_true):
    return ops.reshape(ops.cast(y_true, "int32"), (-1,))


def _class_predictions(y_pred):
    """Class ids from logits: argmax of [B, C], `> 0` of [B, 1] or [B]."""
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) == 1 or y_pred.shape[-1] == 1:
        return ops.cast(ops.reshape(y_pred, (-1,)) > 0, "int32")
    return ops.cast(ops.argmax(y_pred, axis=-1), "int32")


def _weights(sample_weight, size_like):
    if sample_weight is None:
        return ops.ones_like(size_like, dtype="float32")
    weights = ops.cast(sample_weight, "float32")
    return ops.reshape(ops.broadcast_to(ops.reshape(weights, (-1,)), ops.shape(size_like)), (-1,))


class _CountsMetric(keras.metrics.Metric):
    """A metric over float32 counters that `reset_state` sets back to zero."""

    def _counter(self, name, shape=()):
        return self.add_variable(shape=shape, initializer="zeros", dtype="float32", name=name)


class _F1Counts(_CountsMetric):
    """F1 from weighted true-positive / false-positive / false-negative counts."""

    def __init__(self, name, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.true_positives = self._counter("true_positives")
        self.false_positives = self._counter("false_positives")
        self.false_negatives = self._counter("false_negatives")

    def _add_counts(self, weights, true, predicted):
        self.true_positives.assign_add(ops.sum(weights * true * predicted))
        self.false_positives.assign_add(ops.sum(weights * (1.0 - true) * predicted))
        self.false_negatives.assign_add(ops.sum(weights * true * (1.0 - predicted)))

    def result(self):
        tp = self.true_positives
        return ops.divide_no_nan(2.0 * tp, 2.0 * tp + self.false_positives + self.false_negatives)


# --------------------------------------------------------------------------- Keras metrics


@keras.saving.register_keras_serializable(package="keras_albert")
class SparseF1(_F1Counts):
    """Binary F1 score of `positive_class` from sparse labels and logits.

    `y_true`: class ids [B] or [B, 1]. `y_pred`: logits [B, 2] (argmax) or [B, 1]
    (positive when > 0). 0.0 until a positive label or prediction is seen.

    Example:

    >>> metric = SparseF1()
    >>> metric.update_state([1, 0, 1], [[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    >>> round(float(metric.result()), 4)  # tp 1, fp 1, fn 1
    0.5
    """

    def __init__(self, name="f1", positive_class=1, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.positive_class = int(positive_class)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = _flat_labels(y_true)
        predictions = _class_predictions(y_pred)
        weights = _weights(sample_weight, labels)
        true = ops.cast(ops.equal(labels, self.positive_class), "float32")
        predicted = ops.cast(ops.equal(predictions, self.positive_class), "float32")
        self._add_counts(weights, true, predicted)

    def get_config(self):
        return {**super().get_config(), "positive_class": self.positive_class}


@keras.saving.register_keras_serializable(package="keras_albert")
class MatthewsCorrelation(_CountsMetric):
    """Matthews correlation coefficient from a streaming confusion matrix.

    Multi-class (Gorodkin's R_K, as `sklearn.metrics.matthews_corrcoef`); for two
    classes it is the usual MCC of CoLA. `y_true`: class ids; `y_pred`: logits [B, C]
    (argmax), or [B, 1] (> 0) when `num_classes` is 2. Labels outside
    `[0, num_classes)` are ignored. 0.0 when undefined (one class only).
    """

    def __init__(self, num_classes=2, name="mcc", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if num_classes < 2:
            raise ValueError(f"`num_classes` must be >= 2; got {num_classes}.")
        self.num_classes = int(num_classes)
        self.confusion = self._counter("confusion", (self.num_classes, self.num_classes))

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = _flat_labels(y_true)
        predictions = _class_predictions(y_pred)
        weights = _weights(sample_weight, labels)
        true = ops.one_hot(labels, self.num_classes, dtype="float32") * weights[:, None]
        predicted = ops.one_hot(predictions, self.num_classes, dtype="float32")
        self.confusion.assign_add(ops.matmul(ops.transpose(true), predicted))

    def result(self):
        return _matthews_from_confusion(self.confusion, ops)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def _matthews_from_confusion(confusion, backend):
    """R_K from a [C, C] confusion matrix (rows: true classes), in `ops` or NumPy."""
    true_counts = backend.sum(confusion, axis=1)
    predicted_counts = backend.sum(confusion, axis=0)
    correct = backend.trace(confusion)
    total = backend.sum(confusion)
    covariance = correct * total - backend.sum(true_counts * predicted_counts)
    predicted_spread = total * total - backend.sum(predicted_counts * predicted_counts)
    true_spread = total * total - backend.sum(true_counts * true_counts)
    denominator = backend.sqrt(predicted_spread * true_spread)
    if backend is np:
        return float(covariance / denominator) if denominator > 0 else 0.0
    return ops.divide_no_nan(covariance, denominator)


@keras.saving.register_keras_serializable(package="keras_albert")
class PearsonCorrelation(_CountsMetric):
    """Pearson's r between predictions and targets over everything seen so far.

    For regression (STS-B): `y_pred` [B] or [B, 1], `y_true` [B] or [B, 1]. Batch
    statistics (weighted counts, means, centred second moments) are merged with
    Chan et al.'s parallel update, so the streamed value equals the one-shot value
    and stays accurate in float32. 0.0 while either side is constant.

    Precision: the accumulators are float32 (XLA- and TPU-friendly). When the
    predictions barely vary compared with their mean (a collapsed regressor, e.g. std
    1e-5 around 2.7, close to float32's resolution) the streamed r can differ from a
    float64 one-shot value in the third decimal; `pearson()` on the collected
    predictions is exact.
    """

    def __init__(self, name="pearson", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.count = self._counter("count")
        self.mean_true = self._counter("mean_true")
        self.mean_pred = self._counter("mean_pred")
        self.m2_true = self._counter("m2_true")
        self.m2_pred = self._counter("m2_pred")
        self.comoment = self._counter("comoment")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        pred = ops.reshape(ops.cast(y_pred, "float32"), (-1,))
        weights = _weights(sample_weight, true)
        n_b = ops.sum(weights)
        mean_true_b = ops.divide_no_nan(ops.sum(weights * true), n_b)
        mean_pred_b = ops.divide_no_nan(ops.sum(weights * pred), n_b)
        centred_true = true - mean_true_b
        centred_pred = pred - mean_pred_b
        m2_true_b = ops.sum(weights * centred_true * centred_true)
        m2_pred_b = ops.sum(weights * centred_pred * centred_pred)
        comoment_b = ops.sum(weights * centred_true * centred_pred)

        n_a = ops.convert_to_tensor(self.count)
        n = n_a + n_b
        share = ops.divide_no_nan(n_b, n)
        delta_true = mean_true_b - self.mean_true
        delta_pred = mean_pred_b - self.mean_pred
        cross = n_a * share  # n_a * n_b / n
        self.m2_true.assign_add(m2_true_b + delta_true * delta_true * cross)
        self.m2_pred.assign_add(m2_pred_b + delta_pred * delta_pred * cross)
        self.comoment.assign_add(comoment_b + delta_true * delta_pred * cross)
        self.mean_true.assign_add(delta_true * share)
        self.mean_pred.assign_add(delta_pred * share)
        self.count.assign(n)

    def result(self):
        return ops.divide_no_nan(self.comoment, ops.sqrt(self.m2_true * self.m2_pred))


@keras.saving.register_keras_serializable(package="keras_albert")
class MultiLabelF1(_F1Counts):
    """Micro-averaged F1 of multi-label predictions: logit > `threshold` is predicted.

    `y_true`: multi-hot [B, C]; `y_pred`: logits [B, C]. The default threshold 0.0
    suits `keras_albert.losses.ZLPRLoss` and sigmoid cross-entropy on logits alike.
    """

    def __init__(self, threshold=0.0, name="micro_f1", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.threshold = float(threshold)

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = ops.cast(ops.cast(y_true, "float32") > 0.5, "float32")
        predicted = ops.cast(ops.cast(y_pred, "float32") > self.threshold, "float32")
        if sample_weight is None:
            weights = ops.ones_like(true)
        else:
            weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
            weights = weights * ops.ones_like(true)
        self._add_counts(weights, true, predicted)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


def task_metrics(task, num_classes=2):
    """The Keras metrics to compile a model for `task` with (fresh objects each call)."""
    if task == "classification":
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if num_classes == 2:
            metrics.append(SparseF1())
        metrics.append(MatthewsCorrelation(max(num_classes, 2)))
        return metrics
    if task == "regression":
        return [PearsonCorrelation()]
    if task == "multilabel":
        return [MultiLabelF1()]
    raise ValueError(f"Unknown task {task!r}: 'classification', 'regression' or 'multilabel'.")


# --------------------------------------------------------------------------- NumPy


def _class_ids(predictions):
    """Class ids: 1-D input is taken as ids, 2-D as logits (argmax; [N, 1]: > 0)."""
    predictions = np.asarray(predictions)
    if predictions.ndim == 2:
        if predictions.shape[1] == 1:
            return (predictions[:, 0] > 0).astype(np.int64)
        return predictions.argmax(axis=1)
    if predictions.ndim != 1:
        raise ValueError(f"Expected class ids [N] or logits [N, C]; got {predictions.shape}.")
    return predictions.astype(np.int64)


def _pair(predictions, labels):
    labels = np.asarray(labels).reshape(-1)
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels.")
    if not len(labels):
        raise ValueError("No predictions.")
    return predictions, labels


def accuracy(predictions, labels):
    """Fraction of correct class ids (predictions: ids [N] or logits [N, C])."""
    predictions, labels = _pair(_class_ids(predictions), labels)
    return float(np.mean(predictions == labels.astype(np.int64)))


def f1(predictions, labels, positive_class=1):
    """Binary F1 of `positive_class` (0.0 when it never occurs, as scikit-learn)."""
    predictions, labels = _pair(_class_ids(predictions), labels)
    predicted = predictions == positive_class
    true = labels.astype(np.int64) == positive_class
    tp = np.sum(predicted & true)
    denominator = 2 * tp + np.sum(predicted & ~true) + np.sum(~predicted & true)
    return float(2 * tp / denominator) if denominator else 0.0


def matthews(predictions, labels):
    """Matthews correlation (multi-class R_K; 0.0 when undefined, as scikit-learn)."""
    predictions, labels = _pair(_class_ids(predictions), labels)
    labels = labels.astype(np.int64)
    classes, inverse = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    confusion = np.zeros((len(classes), len(classes)), np.float64)
    np.add.at(confusion, (inverse[:len(labels)], inverse[len(labels):]), 1.0)
    return _matthews_from_confusion(confusion, np)


def pearson(predictions, labels):
    """Pearson's r (NaN when either side is constant, as SciPy)."""
    predictions = np.asarray(predictions, np.float64).reshape(-1)
    predictions, labels = _pair(predictions, labels)
    x = predictions - predictions.mean()
    y = labels.astype(np.float64) - labels.astype(np.float64).mean()
    denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
    if denominator == 0:
        return float("nan")
    return float(np.clip(np.sum(x * y) / denominator, -1.0, 1.0))


def _average_ranks(values):
    """1-based ranks, ties getting their average rank (SciPy's `rankdata` default)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse.reshape(-1)]


def spearman(predictions, labels):
    """Spearman's rho: Pearson's r of the average ranks."""
    predictions = np.asarray(predictions, np.float64).reshape(-1)
    predictions, labels = _pair(predictions, labels)
    return pearson(_average_ranks(predictions), _average_ranks(labels.astype(np.float64)))


def micro_f1(logits, labels, threshold=0.0):
    """Micro-averaged multi-label F1 of `logits > threshold` against multi-hot labels."""
    predicted = np.asarray(logits) > threshold
    true = np.asarray(labels) > 0.5
    if predicted.shape != true.shape:
        raise ValueError(f"logits {predicted.shape} and labels {true.shape} differ in shape.")
    tp = np.sum(predicted & true)
    denominator = 2 * tp + np.sum(predicted & ~true) + np.sum(~predicted & true)
    return float(2 * tp / denominator) if denominator else 0.0


def exact_match(logits, labels, threshold=0.0):
    """Fraction of examples whose whole predicted label set is right (subset accuracy)."""
    predicted = np.asarray(logits) > threshold
    true = np.asarray(labels) > 0.5
    if predicted.shape != true.shape:
        raise ValueError(f"logits {predicted.shape} and labels {true.shape} differ in shape.")
    return float(np.mean(np.all(predicted == true, axis=1)))


def evaluate_predictions(task, logits, labels, label_names=None):
    """The usual metrics of a task, from a whole evaluation set's logits and labels.

    - classification: `accuracy`, plus `f1` and `mcc` for two classes;
    - regression: `pearson`, `spearman` (and their mean, `pearson_spearman`, GLUE's
      STS-B score);
    - multilabel: `micro_f1` and `exact_match` (logits > 0);
    - token: `accuracy` on labelled tokens, and `entity_f1` when `label_names` are BIO
      tags, else `macro_f1` (labels [N, W], `IGNORE_LABEL` where unscored);
    - span: `exact_match` and `f1` on token positions (labels [N, 2] or [N, 4]).

    The last two are `keras_albert.token_span_metrics`'s, which says how they count.
    """
    if task == "token":
        return evaluate_token_predictions(logits, labels, label_names)
    if task == "span":
        return evaluate_span_predictions(logits, labels)
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if task == "classification":
        report = {"accuracy": accuracy(logits, labels)}
        binary = logits.ndim == 2 and logits.shape[1] <= 2
        if binary or (logits.ndim == 1 and set(np.unique(labels)) <= {0, 1}):
            report["f1"] = f1(logits, labels)
            report["mcc"] = matthews(logits, labels)
        return report
    if task == "regression":
        if logits.ndim == 2 and logits.shape[1] == 1:
            logits = logits[:, 0]
        report = {"pearson": pearson(logits, labels), "spearman": spearman(logits, labels)}
        report["pearson_spearman"] = (report["pearson"] + report["spearman"]) / 2
        return report
    if task == "multilabel":
        return {"micro_f1": micro_f1(logits, labels), "exact_match": exact_match(logits, labels)}
    raise ValueError(f"Unknown task {task!r}: 'classification', 'regression', 'multilabel', "
                     "'token' or 'span'.")
