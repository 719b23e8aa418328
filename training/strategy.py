"""One `tf.distribute` strategy helper for CPU, one or many GPUs, TPUs and several workers.

    strategy = resolve_strategy("auto")
    with strategy.scope():
        model = ...
        model.compile(...)
    model.fit(dataset.batch(global_batch_size(per_replica, strategy)))

`auto` picks a TPU if one is reachable, else several workers if `TF_CONFIG` lists
more than one, else all GPUs when there are several, else one device.
"""

import json
import os

STRATEGIES = ("auto", "cpu", "one_device", "mirrored", "multi_worker", "tpu")


def _tf_config_workers():
    try:
        config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from error
    return len(config.get("cluster", {}).get("worker", []))


def _tpu_strategy(tpu_address, fail_fast):
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        if not fail_fast:
            return None
        raise RuntimeError(
            "strategy='tpu' but no TPU is reachable from this machine "
            f"({type(error).__name__}: {error}). Run on a TPU VM, pass the TPU's "
            "address, or use strategy='auto'."
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def resolve_strategy(name="auto", tpu_address=None):
    """Returns the `tf.distribute.Strategy` named `name` (see `STRATEGIES`).

    - `"cpu"`: one device, the CPU, even when GPUs are present.
    - `"one_device"`: the first GPU if any, else the CPU.
    - `"mirrored"`: all local GPUs (or all logical CPUs when there is no GPU).
    - `"multi_worker"`: `MultiWorkerMirroredStrategy` from `TF_CONFIG`.
    - `"tpu"`: `TPUStrategy`; fails fast with a clear message without a TPU.
      bfloat16 (`precision="mixed_bfloat16"`) is the natural precision there.
    - `"auto"`: TPU if reachable (only tried when a TPU is advertised by the
      environment), else multi-worker if `TF_CONFIG` lists several workers, else
      mirrored over several GPUs, else one device.

    >>> resolve_strategy("cpu").num_replicas_in_sync
    1
    """
    import tensorflow as tf

    if isinstance(name, tf.distribute.Strategy):
        return name
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}.")
    if name == "tpu":
        return _tpu_strategy(tpu_address, fail_fast=True)
    if name == "multi_worker":
        if not _tf_config_workers():
            raise ValueError(
                "strategy='multi_worker' needs TF_CONFIG with a cluster of workers, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    # auto
    if tpu_address or os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        strategy = _tpu_strategy(tpu_address, fail_fast=False)
        if strategy is not None:
            return strategy
    if _tf_config_workers() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def global_batch_size(per_replica_batch_size, strategy):
    """The batch size to give `tf.data` so that each replica gets `per_replica_batch_size`."""
    return int(per_replica_batch_size) * strategy.num_replicas_in_sync
