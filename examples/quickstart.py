"""Quick start: build encoders from presets, fine-tune a classifier, save and reload it.

Runs offline in under a minute on a laptop CPU:

    python examples/quickstart.py
"""

import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_albert import Encoder  # noqa: E402
from keras_albert.models import SequenceClassifier  # noqa: E402

print("Paper configurations (ALBERT Table 1), exact parameter counts:")
for name in ("albert_base", "albert_large", "bert_base", "distilbert_base"):
    print(f"  {name:16s} {Encoder.from_preset(name).count_params():>12,}")

# A tiny ALBERT (2 groups x 2 inner blocks) and a toy task that needs the tokens:
# label 1 when token id 7 occurs in the sequence.
encoder = Encoder.from_preset("albert_tiny", seed=0)
rng = np.random.default_rng(0)
ids = rng.integers(5, 60, size=(64, 12)).astype("int32")
ids[:, 0] = 2
ids[ids == 7] = 8
ids[::2, rng.integers(1, 12)] = 7
features = {
    "input_word_ids": ids,
    "input_mask": np.ones_like(ids),
    "input_type_ids": np.zeros_like(ids),
}
labels = (ids == 7).any(axis=1).astype("int32")

outputs = encoder({key: value[:2] for key, value in features.items()})
print("\nalbert_tiny outputs:", {
    "sequence_output": tuple(outputs["sequence_output"].shape),
    "pooled_output": tuple(outputs["pooled_output"].shape),
    "encoder_outputs": f"{len(outputs['encoder_outputs'])} tensors",
})

classifier = SequenceClassifier(encoder, num_classes=2, dropout=0.0)
classifier.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
history = classifier.fit(features, labels, batch_size=16, epochs=30, verbose=0)
print(f"\nfine-tuning: loss {history.history['loss'][0]:.3f} -> "
      f"{history.history['loss'][-1]:.3f}, accuracy {history.history['accuracy'][-1]:.2f}")

with tempfile.TemporaryDirectory() as directory:
    path = os.path.join(directory, "classifier.keras")
    classifier.save(path)
    restored = keras.saving.load_model(path)
    same = np.array_equal(restored.predict(features, verbose=0),
                          classifier.predict(features, verbose=0))
    print(f"saved to .keras and reloaded: identical predictions = {same}")
    if not same:
        raise SystemExit("reloaded model differs")
