"""Throughput of the streaming MLM + SOP pretraining data (`pretraining_dataset`).

Examples/s (and real tokens/s) that `pretraining_dataset`
(`keras_albert.training.pretraining_data`) yields after `--warmup` batches, with a
given vocabulary (a SentencePiece `.model` or a WordPiece `vocab.txt`) on given
corpus files:

    taskset -c 1 python benchmarks/pretraining_data_throughput.py VOCAB CORPUS --batches 300

    with VOCAB = ../shared/data/vocab/albert_spiece_rebuilt.model
    and CORPUS = ../shared/data/corpus/python311_docs.txt.gz

Measured at seq_length 128, batch 32, with the real ALBERT SentencePiece vocabulary
(`albert_spiece_rebuilt.model`) on the Python 3.11 documentation corpus
(`python311_docs.txt.gz`), pinned to one core (`taskset -c 1`) of a 2-core machine
that other jobs were loading (load average ~3), so these are lower bounds:

    paragraphs as documents (47 real tokens/example):     2,500 examples/s
    --merge-documents 20 (116 real tokens/example):       2,000 examples/s
    (both cores, same load: 4,900 and 2,400; WordPiece, bert_uncased: 2,500)

About a third of the time is tokenization, half is masking (`mask_tokens`). For
scale: `albert_tiny` (`PretrainingModel`, Adam) trains on about 30 examples/s at
seq_length 128 on the same core, so the data is never the bottleneck on CPU.
"""

import argparse
import itertools
import time


def _load_tokenizer(path):
    from keras_albert.tokenizers import SentencePieceTokenizer, WordPieceTokenizer

    if str(path).endswith(".txt"):
        return WordPieceTokenizer(path)
    return SentencePieceTokenizer(path)


def main(argv=None):
    import tensorflow as tf

    from keras_albert.training.corpus import iter_documents
    from keras_albert.training.pretraining_data import pretraining_dataset

    parser = argparse.ArgumentParser(description="Measures the pretraining data throughput.")
    parser.add_argument("vocabulary", help="a SentencePiece .model or a WordPiece vocab.txt")
    parser.add_argument("corpus", nargs="+", help="corpus files (.txt or .gz)")
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-predictions", type=int, default=20)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--merge-documents", type=int, default=1, metavar="N",
        help="join every N consecutive documents into one (longer documents fill "
        "the sequences; the Python docs corpus has one paragraph per document)")
    args = parser.parse_args(argv)

    def documents():
        stream = iter_documents(args.corpus)
        if args.merge_documents <= 1:
            return stream
        groups = iter(lambda: list(itertools.islice(stream, args.merge_documents)), [])
        return ([line for document in group for line in document] for group in groups)

    tokenizer = _load_tokenizer(args.vocabulary)
    dataset = pretraining_dataset(
        documents,
        tokenizer,
        seq_length=args.seq_length,
        batch_size=args.batch_size,
        max_predictions=args.max_predictions,
        repeat=True,
    )
    iterator = iter(dataset)
    for _ in range(args.warmup):
        next(iterator)
    start = time.perf_counter()
    tokens = 0
    for _ in range(args.batches):
        x, _, _ = next(iterator)
        tokens += int(tf.reduce_sum(x["input_mask"]))
    elapsed = time.perf_counter() - start
    examples = args.batches * args.batch_size
    print(
        f"{examples / elapsed:,.0f} examples/s, {tokens / elapsed:,.0f} tokens/s "
        f"({examples} examples of seq_length {args.seq_length} in {elapsed:.2f} s; "
        f"{tokens / examples:.1f} real tokens per example)"
    )
    return examples / elapsed


if __name__ == "__main__":
    main()
