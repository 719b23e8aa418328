"""SavedModel export: raw text in, float32 outputs out, loadable without keras_albert.

The contract (what a client of the SavedModel may rely on):

- `serving_default(text)`: `text` is a tf.string [batch]; tokenization and packing
  run in the graph with tensorflow-text ops only, so `tensorflow` +
  `tensorflow_text` load and serve it (and stock TensorFlow Serving, which links
  tensorflow-text's ops). Texts longer than the sequence length are truncated.
- `encode(input_word_ids, input_mask, input_type_ids)`: the same model on int32
  [batch, seq] ids, for clients that tokenize themselves.
- Outputs are float32 whatever the training precision. An `Encoder` returns
  `pooled_output` [batch, H], `sequence_output` [batch, seq, H] and `input_mask`
  [batch, seq] (int32, so clients can mean-pool over real tokens); a task model
  returns `logits` and, for classifiers, `probabilities` (softmax).

    export_saved_model(encoder, "export/encoder", preprocessor)
    served = tf.saved_model.load("export/encoder")      # tf + tf_text only
    served.signatures["serving_default"](text=tf.constant(["a sentence"]))
"""

import os

import keras
import tensorflow as tf

from keras_albert.models.encoder import Encoder

_ID_KEYS = ("input_word_ids", "input_mask", "input_type_ids")


def _float32(value):
    return tf.cast(value, tf.float32)


class _ServingModule(tf.Module):
    def __init__(self, model, preprocessor):
        super().__init__(name="keras_albert_serving")
        self.model = model
        self.preprocessor = preprocessor

    def run(self, features):
        features = {key: tf.cast(features[key], tf.int32) for key in _ID_KEYS}
        if isinstance(self.model, Encoder):
            outputs = self.model(features, training=False)
            return {
                "pooled_output": _float32(outputs["pooled_output"]),
                "sequence_output": _float32(outputs["sequence_output"]),
                "input_mask": features["input_mask"],
            }
        logits = _float32(self.model(features, training=False))
        outputs = {"logits": logits}
        if logits.shape[-1] is not None and logits.shape[-1] > 1:
            outputs["probabilities"] = tf.nn.softmax(logits, axis=-1)
        return outputs


def export_saved_model(model, export_dir, preprocessor):
    """Writes `model` (an `Encoder` or a single-output task model) with `preprocessor`
    as a SavedModel in `export_dir` (see the module docstring for the signatures).

    Returns `export_dir`.
    """
    if preprocessor is None:
        raise ValueError("export_saved_model needs the model's preprocessor for raw text.")
    if not isinstance(model, Encoder) and not isinstance(model.output, keras.KerasTensor):
        raise ValueError(
            f"export_saved_model exports an Encoder or a single-output task model; "
            f"{type(model).__name__} has outputs {list(model.output)}. Export its "
            "`encoder` instead."
        )
    module = _ServingModule(model, preprocessor)
    ids = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_text(text):
        return module.run(module.preprocessor(text))

    @tf.function(input_signature=[ids, ids, ids])
    def serve_ids(input_word_ids, input_mask, input_type_ids):
        return module.run({
            "input_word_ids": input_word_ids,
            "input_mask": input_mask,
            "input_type_ids": input_type_ids,
        })

    module.serve_text = serve_text
    module.serve_ids = serve_ids
    os.makedirs(os.path.dirname(os.path.abspath(export_dir)), exist_ok=True)
    tf.saved_model.save(
        module,
        export_dir,
        signatures={"serving_default": serve_text, "encode": serve_ids},
    )
    return export_dir
