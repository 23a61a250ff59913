"""Two sweep processes on one study in a real PostgreSQL server (Debian's `postgresql`).

The server is started for the test in a temporary folder on 127.0.0.1 (initdb, pg_ctl) and
stopped after it. PostgreSQL refuses to run as root, so as root its folder belongs to the
`postgres` user Debian's package creates and the server runs as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config

pytestmark = pytest.mark.slow


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL's server is not installed (.ci/run: apt-get install -y postgresql)")
    # The driver of the [postgres] extra (psycopg 3), which SQLAlchemy takes for postgresql://.
    psycopg = pytest.importorskip(
        "psycopg", reason="psycopg missing: pip install convtrain[postgres]"
    )

    folder = Path(tempfile.mkdtemp(prefix="convtrain-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses root: the folder and the server are postgres's
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)

    run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust")
    options = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1"
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    try:
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE convtrain")
        yield f"postgresql://postgres@127.0.0.1:{port}/convtrain"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def test_two_sweep_processes_share_a_postgresql_study(tmp_path, tiny_data_env, postgres_url):
    cfg = tmp_path / "c.yaml"
    sweep = {"grid": {"model.layers[0].filters": [4, 6, 8, 10]}}
    cfg.write_text(yaml.safe_dump(tiny_config("pg", 5, 2, sweep=sweep)))
    dirs = [tmp_path / "machine-a", tmp_path / "machine-b"]  # as on two machines: no shared files
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "convtrain",
                "sweep",
                str(cfg),
                "--storage",
                postgres_url,
                "--sweep-dir",
                str(d),
            ],
            env=tiny_data_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for d in dirs
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]

    from convtrain.search.results import configurations
    from convtrain.search.study import load_study

    record_a, study = load_study(dirs[0])
    record_b, _ = load_study(dirs[1])
    assert record_a.study == record_b.study and record_a.storage == postgres_url
    trials = configurations(study)
    assert len(study.trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    assert sorted(t.params["model.layers[0].filters"] for t in trials) == [4, 6, 8, 10]
    runs = [p.name for d in dirs if (d / "trials").is_dir() for p in (d / "trials").iterdir()]
    assert len(runs) == 4 and len({r[:5] for r in runs}) == 4  # each trial trained once
    assert sum(o[0].count(" started: ") for o in outs) == 4

    # Either machine's compare reads the whole study, trials trained elsewhere included.
    cmp = subprocess.run(
        [sys.executable, "-m", "convtrain", "compare", str(dirs[0]), "--format", "csv"],
        env=tiny_data_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert cmp.returncode == 0, cmp.stderr
    assert len(cmp.stdout.strip().splitlines()) == 1 + 4
