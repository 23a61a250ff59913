"""Scaling out through tf.distribute: devices, the strategy, and who writes what.

The cluster of a multi-worker run (convtrain.train.cluster) comes from TF_CONFIG or from `--workers`/`--worker-index`
and is validated here, before TensorFlow starts. Every worker trains the same config; only the
chief writes the run directory, the others write their checkpoints to a scratch folder of their
own (deleted at the end), as Keras's multi-worker guide does. The chief tells the other workers
the run directory's name over the strategy's own collectives, so all of them agree on it.

A worker that stops answering must not hang the others: TensorFlow's health checks turn a lost
peer into an error during training, and a watchdog process (convtrain.train.watchdog) bounds
every wait for the other workers (start-up, agreeing on the run directory, each training step)
by `distribute.timeout`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import keras
import tensorflow as tf

from convtrain.config.schema import DistributeConfig, Experiment
from convtrain.data.pipeline import Datasets
from convtrain.errors import ConvtrainError
from convtrain.progress import QUIET, Reporter
from convtrain.train.cluster import (  # noqa: F401 - re-exported for callers and tests
    Cluster,
    cluster_from_flags,
    cluster_from_tf_config,
    resolve_cluster,
)
from convtrain.train.environment import Distribution
from convtrain.train.watchdog import Watchdog

_NAME_WIDTH = 256  # bytes of the run directory's name sent to the other workers


# --- devices and strategies -----------------------------------------------------------------


def configure_devices(tf: Any, config: DistributeConfig) -> list:
    """GPU memory growth and the CPU's logical devices, set before TensorFlow initialises them.

    Memory growth lets a GPU shared with other jobs (or several convtrain runs) allocate what it
    needs instead of all of its memory at once. `cpu_devices` splits the CPU into logical devices
    so `mirrored` can be tried, and tested, without GPUs.
    """
    gpus = tf.config.list_physical_devices("GPU")
    try:
        for gpu in gpus:
            if not tf.config.experimental.get_memory_growth(gpu):
                tf.config.experimental.set_memory_growth(gpu, True)
        cpu = tf.config.list_physical_devices("CPU")[0]
        have = tf.config.get_logical_device_configuration(cpu)
        if config.cpu_devices > 1 and len(have or ()) != config.cpu_devices:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(config.cpu_devices)]
            )
    except RuntimeError as exc:
        raise ConvtrainError(
            f"distribute: expected to configure the devices before TensorFlow started, but it "
            f"already had ({exc}); run one training per process"
        ) from None
    return gpus


@cache
def _multi_worker_class(tf: Any) -> type:
    class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """MultiWorkerMirroredStrategy accepting the reductions Keras 3 asks of it.

        Keras's trainer reduces a whole (images, labels) batch in one call, and per-replica
        scalar logs with axis=0; TensorFlow's multi-worker reduce takes one value (a nest is a
        TODO in distribute_lib) and needs axis=None for scalars. Both are mapped here.
        """

        def reduce(self, reduce_op: Any, value: Any, axis: int | None = None) -> Any:
            def one(v: Any) -> Any:
                rank = self.experimental_local_results(v)[0].shape.rank
                return super(MultiWorkerStrategy, self).reduce(
                    reduce_op, v, None if rank == 0 else axis
                )

            return tf.nest.map_structure(one, value)

    return MultiWorkerStrategy


def _auto(tf: Any, gpus: list, cluster: Cluster | None) -> Any:
    # Several GPUs: one replica each; otherwise the default placement (the GPU, else the CPU).
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def _one_device(tf: Any, gpus: list, cluster: Cluster | None) -> Any:
    return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")


def _mirrored(tf: Any, gpus: list, cluster: Cluster | None) -> Any:
    # Without GPUs, MirroredStrategy() would take CPU:0 only; mirror the logical CPUs instead.
    kind = "GPU" if gpus else "CPU"
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices(kind)])


def _multi_worker(tf: Any, gpus: list, cluster: Cluster | None) -> Any:
    if cluster is None:
        return _multi_worker_class(tf)()  # one local worker
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster.spec()),
        task_type=cluster.task_type,
        task_id=cluster.task_index,
        rpc_layer="grpc",
    )
    return _multi_worker_class(tf)(cluster_resolver=resolver)


STRATEGIES: dict[str, Callable[[Any, list, Cluster | None], Any]] = {
    "auto": _auto,
    "one_device": _one_device,
    "mirrored": _mirrored,
    "multi_worker": _multi_worker,
}


# --- what a strategy means for the run ------------------------------------------------------


def per_replica_batch(global_batch: int, replicas: int) -> int:
    """train.batch_size is the global batch: each step splits it evenly across the replicas."""
    if global_batch % replicas:
        lower = global_batch - global_batch % replicas
        options = " or ".join(str(b) for b in (lower, lower + replicas) if b > 0)
        raise ConvtrainError(
            f"train.batch_size: expected a multiple of the {replicas} replicas (the global batch "
            f"is split evenly across them), received {global_batch}; try {options}"
        )
    return global_batch // replicas


def scaled_for_replicas(experiment: Experiment, replicas: int) -> Experiment:
    """The experiment as trained: the base learning rate times the replicas when asked for.

    The linear scaling rule (Goyal et al., 2017): a k times larger global batch takes k times
    fewer steps per epoch, so each step moves k times further. Absolute floors (`min_lr`) stay.
    """
    train = experiment.train
    if not train.scale_lr_with_replicas or replicas == 1:
        return experiment
    optimizer = train.optimizer.model_copy(
        update={"learning_rate": train.optimizer.learning_rate * replicas}
    )
    return experiment.model_copy(
        update={"train": train.model_copy(update={"optimizer": optimizer})}
    )


@dataclass(frozen=True)
class Placement:
    """The strategy a run trains under, and this process's part in it."""

    strategy: Any
    name: str  # distribute.strategy
    replicas: int
    cluster: Cluster | None
    watchdog: Watchdog | None  # set for a multi-worker cluster

    @property
    def is_chief(self) -> bool:
        return self.cluster is None or self.cluster.is_chief

    @property
    def multi_worker(self) -> bool:
        return self.cluster is not None and self.cluster.size > 1

    def distribution(self, global_batch: int, learning_rate: float) -> Distribution:
        """What environment.json records about the distribution."""
        return Distribution(
            strategy=self.name,
            tf_strategy=type(self.strategy).__name__,
            replicas=self.replicas,
            global_batch=global_batch,
            per_replica_batch=global_batch // self.replicas,
            learning_rate=learning_rate,
            workers=None if self.cluster is None else self.cluster.spec(),
            task=None if self.cluster is None else self.cluster.describe(),
        )

    def agree(self, text: str, what: str) -> str:
        """The chief's `text` on every worker; also a barrier (no worker passes it alone)."""
        if not self.multi_worker:
            return text
        data = text.encode("utf-8")
        if len(data) > _NAME_WIDTH:
            raise ValueError(f"expected at most {_NAME_WIDTH} bytes, received {len(data)}")
        # Each of the chief's replicas sends [1, bytes...]; the others send zeros. The sum holds
        # the chief's replica count first, so any number of local replicas decodes the same.
        mine = (
            [1, *data, *bytes(_NAME_WIDTH - len(data))]
            if self.is_chief
            else [0] * (_NAME_WIDTH + 1)
        )
        with self.waiting(what):
            # Inside a tf.function: run() called eagerly warns of its overhead.
            send = tf.function(lambda: self.strategy.run(tf.constant, (mine, tf.int32)))
            sent = tf.autograph.experimental.do_not_convert(send)()
            total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, sent, axis=None).numpy()
        count = int(total[0])
        return bytes(int(v) // count for v in total[1:] if v).decode("utf-8")

    @contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        if self.watchdog is None:
            yield
            return
        self.watchdog.arm(what)
        try:
            yield
        finally:
            self.watchdog.disarm()


def create_strategy(
    experiment: Experiment, cluster: Cluster | None, reporter: Reporter = QUIET
) -> Placement:
    """Configure the devices and create the strategy (first thing after TensorFlow starts)."""
    config = experiment.distribute
    gpus = configure_devices(tf, config)
    watchdog = None
    if cluster is not None and cluster.size > 1:
        watchdog = Watchdog(config.timeout, f"multi-worker ({cluster.describe()})")
        reporter.note(f"multi-worker: this is {cluster.describe()}")
        watchdog.arm("waiting for all workers to start")
    strategy = STRATEGIES[config.strategy](tf, gpus, cluster)
    if watchdog is not None:
        watchdog.disarm()
    return Placement(strategy, config.strategy, strategy.num_replicas_in_sync, cluster, watchdog)


def shard(datasets: Datasets, placement: Placement) -> Datasets:
    """Each worker of a cluster keeps its share of every global batch.

    The pipeline reads one memory-mapped cache, not files, so TensorFlow's file-based sharding
    does not apply: DATA sharding has every worker run the (cheap) pipeline and keep its part.
    """
    if not placement.multi_worker:
        return datasets
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    val = None if datasets.val is None else datasets.val.with_options(options)
    return replace(datasets, train=datasets.train.with_options(options), val=val)


def peer_errors() -> tuple[type[BaseException], ...]:
    """What TensorFlow raises on a worker when another worker dies or stops answering."""
    return (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError)


_TASK = re.compile(r"/job:(worker|chief)/(?:replica:\d+/)?task:(\d+)")


def lost_peer_message(cluster: Cluster, exc: BaseException, resume: str) -> str:
    """One line naming the worker TensorFlow reports as lost (when it names one)."""
    who = "another worker"
    for job, text in _TASK.findall(str(exc)):
        index = int(text)
        if (job, index) == (cluster.task_type, cluster.task_index):
            continue
        if job == "chief" and cluster.chief is not None:
            who = f"the chief ({cluster.chief})"
        elif job == "worker" and index < len(cluster.workers):
            who = f"worker {index} ({cluster.workers[index]})"
        break
    return (
        f"multi-worker training stopped: {who} stopped answering ({type(exc).__name__}); "
        f"restart every worker of the {cluster.size} with `{resume}`"
    )


# --- the watchdog ---------------------------------------------------------------------------


def watchdog_callback(placement: Placement) -> list[Any]:
    """A Keras callback feeding the watchdog at every batch and epoch; none without one."""
    if placement.watchdog is None:
        return []
    watchdog = placement.watchdog
    feed = lambda *args, **kwargs: watchdog.feed()  # noqa: E731 - the same hook for every event
    return [
        keras.callbacks.LambdaCallback(
            on_epoch_begin=feed,
            on_epoch_end=feed,
            on_train_batch_end=feed,
            on_test_batch_end=feed,
        )
    ]
