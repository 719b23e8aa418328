"""Training pipelines: data, pretraining, fine-tuning, distillation, tf.distribute strategy.

Empty for now: the encoder zoo (`keras_albert`) comes first; the pipelines build on it.
"""
