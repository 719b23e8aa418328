"""Fine-tuning an exported TF-Hub-style encoder inside a Keras 3 model.

`HubEncoderLayer` is `keras.layers.TFSMLayer` with two changes: it defaults to
the endpoints `export_hub_encoder` writes (`serve`, and `call_training` for
`training=True`), and its weights get Keras names without the `:0` that every
restored `tf.Variable` name ends with.

Why the names matter: `TFSMLayer` names each weight `weight.name.replace("/", "_")`
(keras/src/export/tfsm_layer.py, `_add_existing_weight`), which keeps the `:0`.
Keras optimizers name their slots after the weight's path
(keras/src/optimizers/base_optimizer.py, `add_variable_from_reference`, which
replaces `:` only for variables without a `path`), e.g.
`"embedding_word_embeddings_embeddings:0_momentum"`. `model.fit` builds the
optimizer inside its first traced step, where TensorFlow checks scope names and
refuses the `:`. A SavedModel cannot avoid it, since TensorFlow appends `:0` to the
name of every variable it restores.

With a stock `TFSMLayer`, build the optimizer eagerly before `fit` instead
(`model.optimizer.build(model.trainable_variables)`); eager variable creation does
not check scope names.

Example:

>>> encoder = HubEncoderLayer("export/encoder")  # doctest: +SKIP
>>> inputs = {key: keras.Input((None,), dtype="int32", name=key)
...           for key in ("input_word_ids", "input_mask", "input_type_ids")}
>>> pooled = encoder(inputs)["pooled_output"]  # doctest: +SKIP
>>> model = keras.Model(inputs, keras.layers.Dense(2)(pooled))  # doctest: +SKIP
>>> model.compile(keras.optimizers.Adam(2e-5), "mse")  # doctest: +SKIP
"""

import keras


def keras_weight_name(name):
    """A Keras-valid weight name for a restored TensorFlow variable name."""
    if name.endswith(":0"):
        name = name[:-2]
    return name.replace("/", "_").replace(":", "_")


@keras.saving.register_keras_serializable(package="keras_albert")
class HubEncoderLayer(keras.layers.TFSMLayer):
    """`keras.layers.TFSMLayer` for `export_hub_encoder` SavedModels, trainable with any optimizer.

    Args:
        filepath: the SavedModel directory.
        call_endpoint: the inference function (`"serve"`).
        call_training_endpoint: the function called with `training=True`
            (`"call_training"`, dropout on).
        trainable: whether fine-tuning updates the encoder's weights.
    """

    def __init__(
        self,
        filepath,
        call_endpoint="serve",
        call_training_endpoint="call_training",
        trainable=True,
        name=None,
        dtype=None,
    ):
        super().__init__(
            filepath,
            call_endpoint=call_endpoint,
            call_training_endpoint=call_training_endpoint,
            trainable=trainable,
            name=name,
            dtype=dtype,
        )

    def _add_existing_weight(self, weight):
        # As TFSMLayer's, but without the ":0": the Keras variable wraps (does not
        # copy) the restored tf.Variable that the SavedModel's functions use.
        variable = keras.Variable(
            initializer=weight,
            trainable=weight.trainable,
            dtype=weight.dtype,
            shape=weight.shape,
            name=keras_weight_name(weight.name),
        )
        self._track_variable(variable)
