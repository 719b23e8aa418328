"""Heads that turn encoder outputs into predictions.

- `MaskedLMHead`: masked-LM logits, decoder tied to the word embeddings.
- `ClassificationHead`: sequence classification / regression / multi-label on
  `pooled_output`, token classification on `sequence_output`; with `num_outputs=2`
  on `pooled_output` it is the sentence-order (SOP) head.
- `SpanHead`: start/end logits for extractive QA.
"""

from keras_albert.heads.classification import ClassificationHead, SpanHead
from keras_albert.heads.masked_lm import MaskedLMHead

__all__ = ["ClassificationHead", "MaskedLMHead", "SpanHead"]
