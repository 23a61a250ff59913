"""tf.distribute: the cluster from TF_CONFIG or flags, batch and learning-rate arithmetic, the
watchdog, and end-to-end runs: `mirrored` over two logical CPUs, `multi_worker` with two worker
processes on 127.0.0.1 (a complete run, and a killed worker followed by a resume).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from conftest import RUN_LAYOUT, pausing, tiny_config, wait_until_paused

from convtrain.config.load import validate
from convtrain.config.schema import DistributeConfig
from convtrain.errors import ConvtrainError
from convtrain.rundir import RunDir
from convtrain.train import distribute
from convtrain.train.distribute import (
    Cluster,
    cluster_from_flags,
    cluster_from_tf_config,
    configure_devices,
    lost_peer_message,
    per_replica_batch,
    resolve_cluster,
    scaled_for_replicas,
)
from convtrain.train.watchdog import Watchdog, watch

HARD_TIMEOUT = 180  # seconds, for every process a test starts


def tf_config(ports: list[int], index: int) -> str:
    workers = [f"127.0.0.1:{p}" for p in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


# --- the cluster ----------------------------------------------------------------------------


def test_tf_config_workers_only_worker_zero_is_chief() -> None:
    one = cluster_from_tf_config(tf_config([5000, 5001], 1))
    assert one == Cluster(("127.0.0.1:5000", "127.0.0.1:5001"), None, "worker", 1, "TF_CONFIG")
    assert not one.is_chief and one.size == 2
    assert one.describe() == "worker 1 of 2 (127.0.0.1:5001, worker)"
    assert cluster_from_tf_config(tf_config([5000, 5001], 0)).is_chief


def test_tf_config_with_a_chief_job() -> None:
    text = json.dumps(
        {
            "cluster": {"chief": ["host0:2222"], "worker": ["host1:2222"]},
            "task": {"type": "chief", "index": 0},
        }
    )
    chief = cluster_from_tf_config(text)
    assert chief.is_chief and chief.size == 2 and chief.address == "host0:2222"
    assert chief.spec() == {"worker": ["host1:2222"], "chief": ["host0:2222"]}
    worker = cluster_from_tf_config(text.replace('"type": "chief"', '"type": "worker"'))
    assert not worker.is_chief  # with a chief job, worker 0 is an ordinary worker


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{cluster: 1}",
            "TF_CONFIG: expected JSON, received '{cluster: 1}' "
            "(Expecting property name enclosed in double quotes at character 1)",
        ),
        (
            '{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker"}}',
            "TF_CONFIG: cluster: expected the jobs worker and (optionally) chief, received ['ps']",
        ),
        (
            '{"cluster": {"worker": ["a:1", "a:99999"]}, "task": {"type": "worker", "index": 0}}',
            "TF_CONFIG: cluster.worker: expected host:port addresses (port 1-65535), "
            "received 'a:99999'",
        ),
        (
            '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
            "TF_CONFIG: task.index: expected an integer in 0..1, received 2",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}',
            "TF_CONFIG: task.type: expected one of the cluster's jobs ['worker'], "
            "received 'evaluator'",
        ),
    ],
)
def test_tf_config_errors_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(ConvtrainError) as err:
        cluster_from_tf_config(text)
    assert str(err.value) == message


def test_cluster_from_flags() -> None:
    cluster = cluster_from_flags("10.0.0.1:4000, 10.0.0.2:4000", 1)
    assert cluster.workers == ("10.0.0.1:4000", "10.0.0.2:4000")
    assert (cluster.task_index, cluster.source, cluster.is_chief) == (1, "--workers", False)
    with pytest.raises(ConvtrainError) as err:
        cluster_from_flags("10.0.0.1:4000,10.0.0.2:4000", 2)
    assert str(err.value) == (
        "--worker-index: expected an integer in 0..1 (one per --workers address), received 2"
    )
    with pytest.raises(ConvtrainError) as err:
        cluster_from_flags("10.0.0.1", 0)
    assert str(err.value) == (
        "--workers: expected host:port addresses (port 1-65535), received '10.0.0.1'"
    )


def test_resolve_cluster_from_either_source_never_both() -> None:
    env = {"TF_CONFIG": tf_config([5000, 5001], 0)}
    assert resolve_cluster("multi_worker", environ=env).source == "TF_CONFIG"
    assert resolve_cluster("mirrored", environ=env) is None  # TF_CONFIG is for multi_worker
    assert resolve_cluster("multi_worker", environ={}) is None  # one local worker
    flags = resolve_cluster("multi_worker", "h:1,h:2", 1, environ={})
    assert flags is not None and flags.source == "--workers"
    cases = [
        (
            ("multi_worker", "h:1,h:2", None, {}),
            "--workers: expected --worker-index too (both or neither), received only --workers",
        ),
        (
            ("multi_worker", "h:1,h:2", 0, env),
            "--workers: expected the cluster from either TF_CONFIG or --workers, received both "
            "(unset TF_CONFIG or drop --workers and --worker-index)",
        ),
        (
            ("auto", "h:1,h:2", 0, {}),
            "--workers: expected distribute.strategy multi_worker, received auto "
            "(add --set distribute.strategy=multi_worker)",
        ),
    ]
    for (strategy, workers, index, environ), message in cases:
        with pytest.raises(ConvtrainError) as err:
            resolve_cluster(strategy, workers, index, environ=environ)
        assert str(err.value) == message


def test_strategy_table_covers_the_config_choices() -> None:
    choices = DistributeConfig.model_fields["strategy"].annotation.__args__
    assert set(distribute.STRATEGIES) == set(choices)


# --- batch, learning rate, devices ----------------------------------------------------------


def test_global_batch_is_split_evenly_across_replicas() -> None:
    assert per_replica_batch(32, 1) == 32
    assert per_replica_batch(32, 4) == 8
    with pytest.raises(ConvtrainError) as err:
        per_replica_batch(7, 2)
    assert str(err.value) == (
        "train.batch_size: expected a multiple of the 2 replicas (the global batch is split "
        "evenly across them), received 7; try 6 or 8"
    )
    with pytest.raises(ConvtrainError, match="received 3; try 4$"):
        per_replica_batch(3, 4)


def _experiment(**train: Any) -> Any:
    raw = {
        "model": {"layers": [{"type": "global_avg_pool"}]},
        "train": {
            "optimizer": {"type": "sgd", "learning_rate": 0.05},
            "schedule": {"type": "cosine", "min_lr": 0.001},
            **train,
        },
    }
    return validate(raw, "test.yaml")


def test_learning_rate_scales_with_replicas_only_when_asked() -> None:
    plain = _experiment()
    assert scaled_for_replicas(plain, 4) is plain
    scaled = scaled_for_replicas(_experiment(scale_lr_with_replicas=True), 4)
    assert scaled.train.optimizer.learning_rate == pytest.approx(0.2)
    assert scaled.train.optimizer.type == "sgd"
    assert scaled.train.schedule.min_lr == 0.001  # an absolute floor is not scaled
    one = _experiment(scale_lr_with_replicas=True)
    assert scaled_for_replicas(one, 1).train.optimizer.learning_rate == 0.05


class FakeConfig:
    """tf.config's device calls, recorded; `started` makes them fail as after TF initialised."""

    def __init__(self, gpus: int, started: bool = False) -> None:
        self.gpus = [f"GPU:{i}" for i in range(gpus)]
        self.started, self.calls = started, []
        self.growth: dict[str, bool] = {}
        self.logical: list | None = None
        self.experimental = SimpleNamespace(
            get_memory_growth=lambda d: self.growth.get(d, False),
            set_memory_growth=self._set_growth,
        )
        self.LogicalDeviceConfiguration = lambda: "logical"

    def _check(self) -> None:
        if self.started:
            raise RuntimeError("Physical devices cannot be modified after being initialized")

    def _set_growth(self, device: str, value: bool) -> None:
        self._check()
        self.growth[device] = value

    def list_physical_devices(self, kind: str) -> list[str]:
        return self.gpus if kind == "GPU" else ["CPU:0"]

    def get_logical_device_configuration(self, device: str) -> list | None:
        return self.logical

    def set_logical_device_configuration(self, device: str, configs: list) -> None:
        self._check()
        self.logical = configs


def test_memory_growth_on_every_gpu_and_logical_cpus() -> None:
    config = FakeConfig(gpus=2)
    gpus = configure_devices(SimpleNamespace(config=config), DistributeConfig(cpu_devices=3))
    assert gpus == ["GPU:0", "GPU:1"]
    assert config.growth == {"GPU:0": True, "GPU:1": True}
    assert config.logical == ["logical"] * 3
    # Configured already (a second session in one process): nothing to change, no error.
    config.started = True
    configure_devices(SimpleNamespace(config=config), DistributeConfig(cpu_devices=3))


def test_devices_changed_after_tensorflow_started_is_one_clear_error() -> None:
    config = FakeConfig(gpus=0, started=True)
    with pytest.raises(ConvtrainError) as err:
        configure_devices(SimpleNamespace(config=config), DistributeConfig(cpu_devices=2))
    assert str(err.value).startswith(
        "distribute: expected to configure the devices before TensorFlow started, but it "
        "already had (Physical devices cannot be modified after being initialized)"
    )


# --- failures -------------------------------------------------------------------------------


def test_lost_peer_message_names_the_worker() -> None:
    cluster = cluster_from_flags("127.0.0.1:7001,127.0.0.1:7002", 0)
    exc = RuntimeError(
        "Collective ops is aborted by: Error reported from /job:worker/task:0: The following "
        "tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\n"
    )
    assert lost_peer_message(cluster, exc, "convtrain train --resume runs/x") == (
        "multi-worker training stopped: worker 1 (127.0.0.1:7002) stopped answering "
        "(RuntimeError); restart every worker of the 2 with `convtrain train --resume runs/x`"
    )
    vague = lost_peer_message(cluster, RuntimeError("socket closed"), "R")
    assert vague.startswith("multi-worker training stopped: another worker stopped answering")


class Timeline:
    """The watchdog's world, scripted: each command arrives at a given second (b"" closes the
    pipe), and the clock moves only when `wait` says it waited; nothing sleeps."""

    def __init__(self, *events: tuple[float, bytes]) -> None:
        self.events, self.now, self.ended = list(events), 0.0, []

    def clock(self) -> float:
        return self.now

    def wait(self, fds: list, _w: list, _x: list, timeout: float | None) -> tuple[list, list, list]:
        at = self.events[0][0]
        if timeout is not None and at > self.now + timeout:
            self.now += timeout
            return [], [], []
        self.now = max(self.now, at)
        return fds, [], []

    def read(self, fd: int, n: int) -> bytes:
        return self.events.pop(0)[1]

    def run(self, seconds: float) -> str:
        out = io.StringIO()
        watch(0, 4242, seconds, "multi-worker (worker 1 of 2)", out, clock=self.clock,
              wait=self.wait, read=self.read, end=self.ended.append)  # fmt: skip
        return out.getvalue()


def test_watchdog_spares_a_fed_or_disarmed_worker() -> None:
    # Armed, then fed every 0.3 s for 3 s (six timeouts of 0.5 s), disarmed, idle for 10 s.
    feeds = [(0.3 * i, b"feed\n") for i in range(1, 11)]
    timeline = Timeline((0.0, b"arm training\n"), *feeds, (3.1, b"disarm\n"), (13.1, b""))
    assert timeline.run(0.5) == "" and timeline.ended == []
    assert timeline.now == 13.1  # it waited for the pipe to close, the whole idle time


def test_watchdog_ends_a_starved_worker_and_names_what_it_waited_for() -> None:
    timeline = Timeline(
        (0.0, b"arm training\n"),
        (0.4, b"feed\n"),
        (0.5, b"disarm\narm waiting for all workers to start\n"),
        (5.0, b"feed\n"),
    )
    assert timeline.run(0.5) == (
        "error: multi-worker (worker 1 of 2): waiting for all workers to start: no progress "
        "from the other workers in 0.5 s (distribute.timeout); is every worker running?\n"
    )
    assert timeline.ended == [4242] and timeline.now == 1.0


def test_watchdog_process_kills_the_starved_process(tmp_path: Path) -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)  # fmt: skip
    log = tmp_path / "watchdog.err"
    try:
        with open(log, "w") as err:
            dog = Watchdog(0.5, "multi-worker (worker 1 of 2)", pid=victim.pid, stderr=err)
        dog.arm("waiting for all workers to start")
        assert victim.wait(timeout=60) == -signal.SIGKILL
        assert log.read_text() == (
            "error: multi-worker (worker 1 of 2): waiting for all workers to start: no progress "
            "from the other workers in 0.5 s (distribute.timeout); is every worker running?\n"
        )
        dog.close()
    finally:
        victim.kill()
        victim.wait()


def test_watchdog_ends_with_the_worker() -> None:
    dog = Watchdog(60, "multi-worker")
    dog.arm("training")
    dog.close()  # the pipe closes as when the worker exits: the watchdog process ends at once
    assert dog._proc.returncode == 0


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture
def data_env(tiny_data_env: dict[str, str]) -> dict[str, str]:
    return tiny_data_env


def write_config(path: Path, epochs: int, **distribute_: Any) -> Path:
    config = tiny_config("dist", 5, epochs, val=0.25, test=0.25, distribute=distribute_)
    path.write_text(yaml.safe_dump(config))
    return path


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def history_epochs(run: RunDir) -> list[int]:
    with open(run.history, newline="") as fh:
        return [int(r["epoch"]) for r in csv.DictReader(fh)]


def assert_complete(run: RunDir, epochs: int) -> None:
    missing = [item for item in RUN_LAYOUT if not (run.path / item).exists()]
    assert missing == []
    assert sorted(p.name for p in run.checkpoints.iterdir()) == [
        "best.keras",
        "initial.keras",
        "last.keras",
    ]
    assert history_epochs(run) == list(range(1, epochs + 1))
    assert json.loads(run.state.read_text())["status"] == "completed"


class Workers:
    """Worker processes started with Popen, each killed at the end whatever happens."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.procs = tmp, []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        scratch = self.tmp / f"tmp-{name}"
        scratch.mkdir(exist_ok=True)
        with open(self.tmp / f"{name}.err", "w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "convtrain", "train", *args],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**env, "TMPDIR": str(scratch)},  # where a worker's scratch folder goes
            )
        self.procs.append(proc)
        return proc

    def stderr(self, name: str) -> str:
        return (self.tmp / f"{name}.err").read_text()

    def wait(self, proc: subprocess.Popen, deadline: float) -> int:
        return proc.wait(timeout=max(1.0, deadline - time.monotonic()))

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture
def workers(tmp_path: Path):
    group = Workers(tmp_path)
    try:
        yield group
    finally:
        group.kill_all()


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_gives_a_normal_run(
    tmp_path: Path, data_env: dict[str, str]
) -> None:
    config = write_config(tmp_path / "m.yaml", 2, strategy="mirrored", cpu_devices=2)
    runs = tmp_path / "runs"
    odd = subprocess.run(
        [sys.executable, "-m", "convtrain", "train", str(config), "--runs-dir", str(runs)]
        + ["--set", "train.batch_size=7"],
        capture_output=True,
        text=True,
        env=data_env,
        timeout=HARD_TIMEOUT,
    )
    assert odd.returncode == 2 and "Traceback" not in odd.stderr
    assert odd.stderr.strip().splitlines()[-1] == (
        "error: train.batch_size: expected a multiple of the 2 replicas (the global batch is "
        "split evenly across them), received 7; try 6 or 8"
    )
    assert not runs.exists()  # refused before the run directory was created

    done = subprocess.run(
        [sys.executable, "-m", "convtrain", "train", str(config), "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        env=data_env,
        timeout=HARD_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    (path,) = runs.iterdir()
    run = RunDir(path)
    assert_complete(run, 2)
    placed = json.loads(run.environment.read_text())["distribute"]
    assert placed["tf_strategy"] == "MirroredStrategy"
    assert (placed["replicas"], placed["global_batch"], placed["per_replica_batch"]) == (2, 8, 4)


@pytest.mark.slow
def test_two_workers_train_one_run_directory_written_by_the_chief(
    tmp_path: Path, data_env: dict[str, str], workers: Workers
) -> None:
    config = write_config(tmp_path / "mw.yaml", 2, strategy="multi_worker", timeout=120)
    runs = tmp_path / "runs"
    addresses = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    deadline = time.monotonic() + HARD_TIMEOUT
    procs = [
        workers.start(
            f"w{i}",
            [
                str(config),
                "--runs-dir",
                str(runs),
                "--workers",
                addresses,
                "--worker-index",
                str(i),
            ],
            data_env,
        )
        for i in (0, 1)
    ]
    codes = [workers.wait(p, deadline) for p in procs]
    assert codes == [0, 0], workers.stderr("w0") + workers.stderr("w1")
    (path,) = runs.iterdir()  # one run directory, made by the chief
    run = RunDir(path)
    assert_complete(run, 2)
    # Both workers name the same run directory; the other worker's scratch folder is gone.
    for name in ("w0", "w1"):
        assert f"run directory: {path}\n" in workers.stderr(name)
    assert list((tmp_path / "tmp-w1").iterdir()) == []
    assert "the chief evaluates and writes the reports" in workers.stderr("w1")
    placed = json.loads(run.environment.read_text())["distribute"]
    assert placed["replicas"] == 2 and placed["workers"] == {"worker": addresses.split(",")}


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_with_one_line_and_the_run_resumes(
    tmp_path: Path, data_env: dict[str, str], workers: Workers
) -> None:
    epochs = 5
    config = write_config(tmp_path / "mw.yaml", epochs, strategy="multi_worker", timeout=120)
    runs, hold = tmp_path / "runs", tmp_path / "hold"
    ports = free_ports(2)
    deadline = time.monotonic() + HARD_TIMEOUT
    # The chief stops once epoch 2 is committed; the other worker waits for it in epoch 3.
    chief, other = (
        workers.start(
            f"w{i}",
            [str(config), "--runs-dir", str(runs)],
            {
                **(pausing(data_env, 2, hold) if i == 0 else data_env),
                "TF_CONFIG": tf_config(ports, i),
            },
        )
        for i in (0, 1)
    )
    wait_until_paused(chief, hold)
    os.kill(other.pid, signal.SIGKILL)
    assert other.wait(timeout=60) == -signal.SIGKILL
    (hold / "go").touch()  # the chief goes on into epoch 3, without its peer
    code = workers.wait(chief, deadline)
    err = workers.stderr("w0")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"error: multi-worker training stopped: worker 1 (127.0.0.1:{ports[1]}) stopped "
        f"answering (UnavailableError); restart every worker of the 2 with "
        f"`convtrain train --resume {runs / os.listdir(runs)[0]}`"
    )
    (path,) = runs.iterdir()
    run = RunDir(path)
    state = json.loads(run.state.read_text())
    assert (state["status"], state["completed_epochs"]) == ("failed", 2)

    # Every worker resumes from the chief's checkpoints (here with --workers instead of TF_CONFIG).
    addresses = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    resumed = [
        workers.start(
            f"r{i}",
            ["--resume", str(path), "--workers", addresses, "--worker-index", str(i)],
            data_env,
        )
        for i in (0, 1)
    ]
    codes = [workers.wait(p, deadline) for p in resumed]
    assert codes == [0, 0], workers.stderr("r0") + workers.stderr("r1")
    assert_complete(run, epochs)
    env = json.loads(run.environment.read_text())
    assert env["resumed"][-1]["completed_epochs"] == state["completed_epochs"]
    assert env["resumed"][-1]["distribute"]["replicas"] == 2


@pytest.mark.slow
def test_a_worker_alone_gives_up_after_the_timeout(
    tmp_path: Path, data_env: dict[str, str]
) -> None:
    config = write_config(tmp_path / "mw.yaml", 1, strategy="multi_worker", timeout=3)
    runs = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "convtrain", "train", str(config), "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        env={**data_env, "TF_CONFIG": tf_config(free_ports(2), 0)},
        timeout=HARD_TIMEOUT,
    )
    # Blocked in TensorFlow's C++, the worker is ended by its watchdog process (SIGKILL).
    assert done.returncode == -signal.SIGKILL and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: multi-worker (worker 0 of 2 (127.0.0.1:")
    assert "waiting for all workers to start: no progress from the other workers" in last
    assert not runs.exists()
