"""Training a SentencePiece vocabulary with ALBERT's special tokens.

ALBERT's `spiece.model` numbers its special pieces `<pad>` 0, `<unk>` 1, `[CLS]` 2,
`[SEP]` 3, `[MASK]` 4; `train_sentencepiece` produces the same layout, so the result
plugs into `SentencePieceTokenizer`, the pretraining data and exported models.
"""

import io

import numpy as np

ALBERT_USER_SYMBOLS = ("[CLS]", "[SEP]", "[MASK]")


def train_sentencepiece(lines, vocabulary_size=8000, model_type="unigram",
                        max_sentences=2_000_000, lowercase=True, strip_accents=True):
    """Trains a SentencePiece model on `lines` (an iterable of strings); returns its bytes.

    Lines are normalised as `SentencePieceTokenizer` normalises text (lowercased,
    accents stripped), so the pieces are the ones the tokenizer will meet.
    The first `max_sentences` lines are used (SentencePiece keeps them in memory),
    so the same lines always give the same vocabulary.

    >>> proto = train_sentencepiece(["a small corpus"] * 50, vocabulary_size=20)  # doctest: +SKIP
    >>> SentencePieceTokenizer(proto).cls_id  # doctest: +SKIP
    2
    """
    import sentencepiece as spm

    from keras_albert.tokenizers import SentencePieceTokenizer

    normaliser = SentencePieceTokenizer(lowercase=lowercase, strip_accents=strip_accents)

    def normalised():
        batch = []
        for line in lines:
            if line.strip():
                batch.append(line)
            if len(batch) == 1024:
                yield from _normalise(normaliser, batch)
                batch = []
        if batch:
            yield from _normalise(normaliser, batch)

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=normalised(),
            model_writer=model,
            vocab_size=vocabulary_size,
            model_type=model_type,
            pad_id=0,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            user_defined_symbols=list(ALBERT_USER_SYMBOLS),
            input_sentence_size=max_sentences,
            # Deterministic: the first `max_sentences` lines, in order.
            shuffle_input_sentence=False,
            character_coverage=0.9995,
            num_threads=2,
            minloglevel=2,
        )
    except RuntimeError as error:
        raise ValueError(
            f"SentencePiece could not train a {vocabulary_size}-piece vocabulary on this "
            f"corpus ({error}); use a smaller vocabulary_size or more text."
        ) from error
    return model.getvalue()


def _normalise(tokenizer, batch):
    import tensorflow as tf

    texts = tokenizer._normalize(tf.constant(batch))
    return [text.decode("utf-8") for text in np.asarray(texts)]
