"""In-graph tokenizers and input packing for the encoders.

`SentencePieceTokenizer` (ALBERT) and `WordPieceTokenizer` (BERT, DistilBERT) map
raw strings to token ids; `InputPacker` adds `[CLS]`/`[SEP]`, truncates and pads;
`Preprocessor` chains a tokenizer and a packer.
"""

from keras_albert.tokenizers.packer import InputPacker
from keras_albert.tokenizers.preprocessor import Preprocessor
from keras_albert.tokenizers.sentencepiece import SentencePieceTokenizer
from keras_albert.tokenizers.wordpiece import WordPieceTokenizer

__all__ = ["InputPacker", "Preprocessor", "SentencePieceTokenizer", "WordPieceTokenizer"]
