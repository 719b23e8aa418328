"""One `tf.distribute` strategy helper for CPU, one or many GPUs, TPUs and several workers.

    strategy = resolve_strategy("auto")
    plan = DistributionPlan(strategy, global_batch=64, steps_per_execution=1)
    with strategy.scope():
        model = ...
        model.compile(..., steps_per_execution=plan.steps_per_execution)
    model.fit(plan.prepare(dataset_of_global_batches))

`auto` picks a TPU if one is reachable, else several workers if `TF_CONFIG` lists
more than one, else all GPUs when there are several, else one device.

Batch sizes, dataset distribution and `steps_per_execution` are decided in one place,
`DistributionPlan`:

- batch sizes are global: every worker's input pipeline makes the same batches of
  `global_batch` examples (same files, same seed); Keras's `fit` splits each one
  among the replicas (`per_replica_batch` each), so the run equals one device on the
  same global batches. Under `MultiWorkerMirroredStrategy`, `prepare` sets
  `AutoShardPolicy.DATA`: worker `i` keeps the `i`-th slice of every global batch.
- `steps_per_execution > 1` fails under `MirroredStrategy` and MWMS with this Keras
  (3.15) and TensorFlow (2.21) ("You must feed a value for placeholder tensor ..."):
  the plan refuses it there with a clear error instead.
- `worker_index`, `num_workers` and `is_chief` say which worker this process is;
  `worker_output_dir` gives non-chief workers a scratch directory, so that only the
  chief writes the shared output (models, logs, checkpoints).
"""

import json
import os
import shutil
import tempfile

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


def _is_replicating(strategy):
    import tensorflow as tf

    return isinstance(strategy, (tf.distribute.MirroredStrategy,
                                 tf.distribute.MultiWorkerMirroredStrategy))


def worker_role(strategy=None):
    """`(worker_index, num_workers, is_chief)` of this process under `strategy`.

    One process without a cluster is worker 0 of 1, and the chief. Under
    `MultiWorkerMirroredStrategy` the chief is TensorFlow's (`should_checkpoint`):
    worker 0, or the `chief` task when the cluster has one.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0, 1, True
    resolver = strategy.cluster_resolver
    index = int(resolver.task_id or 0) if resolver is not None else 0
    workers = getattr(strategy.extended, "_num_workers", 1)
    return index, int(workers), bool(strategy.extended.should_checkpoint)


def is_chief(strategy=None):
    """True on the process that writes shared outputs (see `worker_role`)."""
    return worker_role(strategy)[2]


def worker_output_dir(output_dir, strategy=None):
    """`output_dir` on the chief, a fresh scratch directory on the other workers.

    Under `MultiWorkerMirroredStrategy` every worker must run the same saving code
    (reading distributed variables may involve collective ops), but only the
    chief's files are kept: the others write to the scratch directory, which
    `remove_worker_dir` deletes afterwards.
    """
    index, _, chief = worker_role(strategy)
    if chief:
        return output_dir
    return tempfile.mkdtemp(prefix=f"keras_albert_worker{index}_")


def remove_worker_dir(path, output_dir):
    """Deletes a scratch directory made by `worker_output_dir` (never `output_dir`)."""
    if os.path.abspath(path) != os.path.abspath(output_dir):
        shutil.rmtree(path, ignore_errors=True)


def check_steps_per_execution(strategy, steps_per_execution):
    """`steps_per_execution` as an int >= 1; refuses > 1 where this Keras fails with it."""
    if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, int) \
            or steps_per_execution < 1:
        raise ValueError(f"steps_per_execution must be an int >= 1; got "
                         f"{steps_per_execution!r}.")
    if steps_per_execution > 1 and _is_replicating(strategy):
        raise ValueError(
            f"steps_per_execution={steps_per_execution} is not supported under "
            f"{type(strategy).__name__}: Keras 3.15 on TensorFlow 2.21 fails there "
            "(\"You must feed a value for placeholder tensor ...\"). Use "
            "steps_per_execution=1 (--steps-per-execution 1) with this strategy.")
    return steps_per_execution


def prepare_dataset(dataset, strategy):
    """`dataset` (of global batches, the same on every worker) set up for `fit`.

    Under `MultiWorkerMirroredStrategy`: `AutoShardPolicy.DATA`, so each worker keeps
    its slice of every global batch (Keras's `fit` distributes the dataset with
    `experimental_distribute_dataset`); the default policy would first try to shard
    by files and warn. Other strategies: unchanged.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.with_options(options)


class DistributionPlan:
    """Global and per-replica batch size, dataset distribution and
    `steps_per_execution` for one strategy, decided and checked in one place.

    Args:
        strategy: a `tf.distribute.Strategy` (or a name for `resolve_strategy`).
        global_batch: examples per training step over all replicas (what `--batch`
            means); must divide evenly among the replicas, so that the mean of the
            replicas' losses is the global batch's mean loss.
        steps_per_execution: training steps per `tf.function` call (see
            `check_steps_per_execution`).
    """

    def __init__(self, strategy, global_batch, steps_per_execution=1):
        self.strategy = resolve_strategy(strategy)
        self.num_replicas = int(self.strategy.num_replicas_in_sync)
        global_batch = int(global_batch)
        if global_batch < 1 or global_batch % self.num_replicas:
            raise ValueError(
                f"The global batch size ({global_batch}) must be a positive multiple of "
                f"the {self.num_replicas} replicas of {type(self.strategy).__name__}, so "
                "every replica gets the same number of examples.")
        self.global_batch = global_batch
        self.per_replica_batch = global_batch // self.num_replicas
        self.steps_per_execution = check_steps_per_execution(self.strategy,
                                                             steps_per_execution)
        self.worker_index, self.num_workers, self.is_chief = worker_role(self.strategy)

    def prepare(self, dataset):
        """`dataset` (of global batches) set up for `fit` under the strategy (see
        `prepare_dataset`)."""
        return prepare_dataset(dataset, self.strategy)

    def __repr__(self):
        return (f"DistributionPlan({type(self.strategy).__name__}, replicas="
                f"{self.num_replicas}, global_batch={self.global_batch}, per_replica_batch="
                f"{self.per_replica_batch}, steps_per_execution={self.steps_per_execution}, "
                f"worker {self.worker_index}/{self.num_workers})")
