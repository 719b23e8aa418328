"""Inference speed of fine-tuned classifiers (e.g. a teacher and its distilled student).

Each model predicts a task file in length-sorted batches (tokenized once, not timed),
`--repeats` times after one warm-up pass, in one process, alternating between the
models pass by pass (median per model); prints
examples/s, the speed ratio to the first model, and accuracy. `--via predict` times
Keras's `model.predict`; `--via saved_model` exports each model for serving and times its
`token_ids` signature on the same batches (the TensorFlow Serving path, without Keras's
predict loop).

    python benchmarks/inference_speed.py sst2_teacher/ sst2_student/ \\
        --data ../shared/data/sst2/dev.tsv
"""

import argparse
import json
import pathlib
import sys
import time


def _saved_model_predictor(model, preprocessor):
    """A `predict(dataset)` that runs `model`'s serving export's `token_ids` signature."""
    import tempfile

    import numpy as np
    import tensorflow as tf

    from keras_albert.export import export_saved_model

    path = export_saved_model(model, tempfile.mkdtemp() + "/model", preprocessor,
                              warmup_texts=())
    signature = tf.saved_model.load(path).signatures["token_ids"]

    def predict(dataset):
        return np.concatenate([
            signature(**{key: tf.cast(value, tf.int32) for key, value in features.items()})
            ["logits"].numpy()
            for features, _ in dataset
        ])

    return predict


def measure(model_dirs, data_path, batch_size=64, repeats=3, seq_length=128, via="predict"):
    import statistics

    import keras

    from keras_albert.conversion.huggingface import tokenizer_from_directory
    from keras_albert.tokenizers import Preprocessor
    from keras_albert.metrics import evaluate_predictions
    from keras_albert.training.task_dataset import restore_order, task_dataset
    from keras_albert.training.task_files import load_task_file

    data = load_task_file(data_path)
    runs = []
    for directory in model_dirs:
        directory = pathlib.Path(directory)
        model = keras.saving.load_model(directory / "model.keras", compile=False)
        preprocessor = Preprocessor(tokenizer_from_directory(directory), seq_length=seq_length)
        # Tokenized once, outside the timing: the models' speed is what differs.
        dataset, order = task_dataset(data, preprocessor, batch_size=batch_size,
                                      sort_by_length=True)
        dataset = dataset.cache()
        if via == "saved_model":
            predict = _saved_model_predictor(model, preprocessor)
        else:
            def predict(batches, model=model):
                return model.predict(batches, verbose=0)
        logits = predict(dataset)  # warm-up: tracing, cache filled
        runs.append({"directory": directory, "model": model, "predict": predict,
                     "dataset": dataset, "order": order, "seconds": [],
                     "logits": logits})
    # Passes alternate between the models, so a change in the machine's load
    # affects all of them alike; each model's time is the median of its passes.
    for _ in range(repeats):
        for run in runs:
            start = time.perf_counter()
            run["logits"] = run["predict"](run["dataset"])
            run["seconds"].append(time.perf_counter() - start)
    results = []
    for run in runs:
        seconds = statistics.median(run["seconds"])
        logits = restore_order(run["logits"], run["order"])
        results.append({
            "model": str(run["directory"]),
            "layers": run["model"].encoder.num_layers,
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
    parser.add_argument("--via", choices=("predict", "saved_model"), default="predict")
    args = parser.parse_args(argv)
    for result in measure(args.models, args.data, args.batch, args.repeats, via=args.via):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
