"""TensorFlow Datasets text datasets to a `TaskData`, failing fast without network.

`load_tfds` reads a prepared dataset offline; otherwise it first checks, within a
timeout, that the download hosts answer (TFDS itself would hang on a machine without
network) and only then downloads and prepares it.

Example:

>>> train = load_tfds("glue/sst2", "train")                      # doctest: +SKIP
>>> train.task, train.label_names                                # doctest: +SKIP
('classification', ['negative', 'positive'])
"""

import socket
import threading
import time

import numpy as np

from keras_albert.training.task_records import TaskData

# Text keys of well-known TFDS datasets (what `load_tfds` reads without `text_keys`).
TFDS_TEXT_KEYS = {
    "imdb_reviews": ("text",),
    "glue/sst2": ("sentence",),
    "glue/cola": ("sentence",),
    "glue/mrpc": ("sentence1", "sentence2"),
    "glue/stsb": ("sentence1", "sentence2"),
    "glue/rte": ("sentence1", "sentence2"),
    "glue/wnli": ("sentence1", "sentence2"),
    "glue/qqp": ("question1", "question2"),
    "glue/qnli": ("question", "sentence"),
    "glue/mnli": ("premise", "hypothesis"),
    "super_glue/boolq": ("question", "passage"),
}
# Where TFDS fetches the raw files of those datasets from; prepared copies are on GCS.
_TFDS_HOSTS = {"imdb_reviews": "ai.stanford.edu", "glue": "dl.fbaipublicfiles.com"}
_GCS_HOST = "storage.googleapis.com"


def _any_reachable(hosts, timeout):
    """Whether a TCP connection to one of `hosts` (port 443) opens within `timeout` s.

    The connections are tried at once in daemon threads, since name resolution
    ignores socket timeouts; whatever has not answered by then counts as unreachable.
    """
    answered = threading.Event()

    def connect(host):
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            answered.set()
        except OSError:
            pass

    threads = [threading.Thread(target=connect, args=(host,), daemon=True) for host in hosts]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    while not answered.is_set() and time.monotonic() < deadline:
        if not any(thread.is_alive() for thread in threads):
            break
        answered.wait(0.05)
    return answered.is_set()


def _tfds_prepared(tfds, name, data_dir, timeout):
    """`(builder, is_prepared)`, or `(None, False)` if that does not answer in time."""
    result = []

    def check():
        try:
            builder = tfds.builder(name, data_dir=data_dir)
            result.append((builder, builder.is_prepared()))
        except Exception as error:  # noqa: BLE001 - reported by the caller
            result.append(error)

    thread = threading.Thread(target=check, daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        return None, False
    if isinstance(result[0], Exception):
        raise result[0]
    return result[0]


def load_tfds(name, split, text_keys=None, label_key="label", timeout=10.0, data_dir=None):
    """Reads a TensorFlow Datasets text dataset into a `TaskData`.

    Needs `tensorflow-datasets` (`pip install 'keras-albert[tfds]'`). A dataset already
    prepared in `data_dir` is read offline; otherwise it is downloaded, after checking
    within `timeout` seconds that the download hosts answer, so that without network
    it fails quickly with a clear message instead of hanging.

    Args:
        name: e.g. `"imdb_reviews"`, `"glue/sst2"`, `"glue/mrpc"`, `"glue/stsb"`,
            `"glue/rte"` (these and `TFDS_TEXT_KEYS` know their text keys).
        split: e.g. `"train"`, `"validation"`, `"train[:10%]"`.
        text_keys: one or two feature names holding the texts (for other datasets).
        label_key: the label feature; a float label means regression (STS-B).
        timeout: seconds allowed for the reachability check.
        data_dir: the TFDS data directory (TFDS's default when None).
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "load_tfds needs tensorflow-datasets: pip install 'keras-albert[tfds]' "
            "(or read a local file with load_task_file)."
        ) from error
    if text_keys is None:
        if name not in TFDS_TEXT_KEYS:
            raise ValueError(
                f"Unknown text features for TFDS dataset {name!r}: pass `text_keys=`. "
                f"Known datasets: {sorted(TFDS_TEXT_KEYS)}."
            )
        text_keys = TFDS_TEXT_KEYS[name]
    if isinstance(text_keys, str):
        text_keys = (text_keys,)
    text_keys = tuple(text_keys)

    deadline = time.monotonic() + timeout
    builder, prepared = _tfds_prepared(tfds, name, data_dir, timeout)
    if not prepared:
        hosts = [_GCS_HOST]
        family = name.split("/")[0].split(":")[0]
        if family in _TFDS_HOSTS:
            hosts.append(_TFDS_HOSTS[family])
        if not _any_reachable(hosts, max(deadline - time.monotonic(), 0.0)):
            raise ConnectionError(
                f"cannot download TFDS dataset {name!r}: no network ({' and '.join(hosts)} "
                f"did not answer within {timeout:g} s) and it is not prepared in "
                f"{data_dir or 'the default TFDS data_dir'}; pass a local file with "
                "load_task_file(path) instead (TSV, CSV or JSONL), or point `data_dir` at "
                "a prepared copy."
            )
        if builder is None:
            builder = tfds.builder(name, data_dir=data_dir)
        builder.download_and_prepare()
    features = builder.info.features
    wanted = text_keys + ((label_key,) if label_key else ())
    missing = [key for key in wanted if key not in features]
    if missing:
        raise ValueError(f"TFDS dataset {name!r} has no features {missing}; it has "
                         f"{sorted(features.keys())}.")
    texts = [[] for _ in text_keys]
    labels = []
    for example in tfds.as_numpy(builder.as_dataset(split=split)):
        for column, key in zip(texts, text_keys):
            value = example[key]
            column.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
        if label_key:
            labels.append(example[label_key])
    if not label_key:
        return TaskData(tuple(texts), None, "classification", None)
    labels = np.asarray(labels)
    label_feature = features[label_key]
    if np.issubdtype(labels.dtype, np.floating):
        return TaskData(tuple(texts), labels.astype(np.float32), "regression", None)
    names = getattr(label_feature, "names", None)
    return TaskData(tuple(texts), labels.astype(np.int32), "classification",
                    list(names) if names else None)
