"""Inference speed of fine-tuned classifiers (e.g. a teacher and its distilled student).

Each model predicts a task file in length-sorted batches (tokenized once, not timed),
`--repeats` times after one warm-up pass, in the same process one after the other; prints
examples/s, the speed ratio to the first model, and accuracy.

    python benchmarks/inference_speed.py sst2_teacher/ sst2_student/ \\
        --data ../shared/data/sst2/dev.tsv
"""

import argparse
import json
import pathlib
import sys
import time


def measure(model_dirs, data_path, batch_size=64, repeats=3, seq_length=128):
    import keras

    from keras_albert.conversion.huggingface import tokenizer_from_directory
    from keras_albert.tokenizers import Preprocessor
    from keras_albert.metrics import evaluate_predictions
    from training.task_data import load_task_file, restore_order, task_dataset

    data = load_task_file(data_path)
    results = []
    for directory in model_dirs:
        directory = pathlib.Path(directory)
        model = keras.saving.load_model(directory / "model.keras", compile=False)
        preprocessor = Preprocessor(tokenizer_from_directory(directory), seq_length=seq_length)
        # Tokenized once, outside the timing: the models' speed is what differs.
        dataset, order = task_dataset(data, preprocessor, batch_size=batch_size,
                                      sort_by_length=True)
        dataset = dataset.cache()
        logits = model.predict(dataset, verbose=0)  # warm-up: tracing, cache filled
        start = time.perf_counter()
        for _ in range(repeats):
            logits = model.predict(dataset, verbose=0)
        seconds = (time.perf_counter() - start) / repeats
        logits = restore_order(logits, order)
        results.append({
            "model": str(directory),
            "layers": model.encoder.num_layers,
            "examples_per_second": len(data) / seconds,
            **evaluate_predictions(data.task, logits, data.labels),
        })
    for result in results:
        result["speedup_vs_first"] = (result["examples_per_second"]
                                      / results[0]["examples_per_second"])
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="keras-albert finetune/distill outputs")
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    for result in measure(args.models, args.data, args.batch, args.repeats):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
