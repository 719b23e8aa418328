"""Padding efficiency of length-bucketed fine-tuning batches vs fixed-width ones.

Reads a task file (TSV / CSV / JSONL, optionally gzipped), tokenizes it with a
WordPiece vocabulary and builds `task_dataset` three ways: padded to `--seq`
(`bucket_boundaries=None`), bucketed in input order, and bucketed and shuffled. For
each it prints the real-token share of the padded batches, the batch widths, the
batches in one epoch and the time to build the dataset:

    python benchmarks/padding_report.py ../shared/data/sst2/train.tsv \\
        ../shared/data/vocab/bert_uncased_vocab.txt --seq 128
"""

import argparse
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("vocab", help="a WordPiece vocab.txt")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-shapes", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    from keras_albert.tokenizers import Preprocessor, WordPieceTokenizer
    from keras_albert.training.task_dataset import batch_widths
    from keras_albert.training.task_dataset import padding_efficiency
    from keras_albert.training.task_dataset import steps_per_epoch
    from keras_albert.training.task_dataset import task_dataset
    from keras_albert.training.task_files import load_task_file

    start = time.perf_counter()
    data = load_task_file(args.file, limit=args.limit,
                          transform=lambda text: text.replace("<br />", " "))
    loaded = time.perf_counter()
    preprocessor = Preprocessor(WordPieceTokenizer(vocabulary=args.vocab), seq_length=args.seq)
    for name, kwargs in (("fixed", {"bucket_boundaries": None}),
                         ("bucketed, input order", {}),
                         ("bucketed, shuffled", {"shuffle": True})):
        began = time.perf_counter()
        dataset = task_dataset(data, preprocessor, batch_size=args.batch,
                               max_shapes=args.max_shapes, **kwargs)
        built = time.perf_counter()
        efficiency = padding_efficiency(dataset)
        print(f"{name:24s} efficiency {efficiency:.3f}  widths {batch_widths(dataset)}  "
              f"batches {steps_per_epoch(dataset)}  build {built - began:.1f} s")
    print(f"{len(data)} examples, read in {loaded - start:.1f} s; boundaries "
          f"{dataset.bucket_boundaries}")


if __name__ == "__main__":
    main()
