"""``kubehawk spark`` on a real Spark standalone cluster on loopback (a master and a worker, each
its own JVM, the executor started by the worker): what a cluster user runs, with executors that
are not the driver's JVM. The files are on this machine's disk, which every executor here sees,
so the executors read their parts themselves, as on a cluster with a shared filesystem."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from kubehawk.config import Config
from kubehawk.detect import Detector, load_ruleset
from scaletools import CONFIG, mixed_lines, one_process, write

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(log: Path, pattern: str, proc: subprocess.Popen, seconds: float = 90) -> re.Match:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace")) if log.exists() else None
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"{log.name} exited early:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no {pattern!r} in {log.name} after {seconds} s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The URL of a standalone master with one worker (2 cores) registered, and the worker's
    folder (where each application's executors keep their logs)."""
    pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (make dev installs it)")
    home = Path(pyspark.__file__).parent
    folder = tmp_path_factory.mktemp("cluster")
    env = dict(os.environ, SPARK_HOME=str(home), PYSPARK_PYTHON=sys.executable,
               SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false", SPARK_WORKER_DIR=str(folder / "work"))
    spark_class = str(home / "bin" / "spark-class")
    procs: list[subprocess.Popen] = []
    try:
        master_log = folder / "master.log"
        procs.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", "0",
             "--webui-port", "0"], stdout=master_log.open("wb"), stderr=subprocess.STDOUT, env=env))
        url = _wait_for(master_log, r"Starting Spark master at (spark://127\.0\.0\.1:\d+)", procs[0]).group(1)
        _wait_for(master_log, r"New state: ALIVE", procs[0])
        worker_log = folder / "worker.log"
        procs.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--port", "0",
             "--webui-port", "0", "--cores", "2", "--memory", "1g"],
            stdout=worker_log.open("wb"), stderr=subprocess.STDOUT, env=env))
        _wait_for(worker_log, r"Successfully registered with master", procs[1])
        yield url, folder / "work"
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_kubehawk_spark_on_a_standalone_cluster(cluster, tmp_path):
    """Parts read by an executor the worker started, merged on the driver: one process's alerts,
    each named by the line one process names, and its counts."""
    log = write(tmp_path / "audit.log", mixed_lines(2000, seed=31))
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    config = Config.load(cfg)
    out = tmp_path / "alerts"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    url, work = cluster
    r = subprocess.run([sys.executable, "-m", "kubehawk.spark", "--master", url, "--config", str(cfg),
                        "-o", str(out), str(log)], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert list(work.glob("app-*/*/stderr")), "the worker's executors did the reading"
    single, stats = one_process([str(log)], Detector(load_ruleset(config), config))
    written = [json.loads(x) for p in out.glob("day=*/*.json") for x in p.read_text().splitlines()]
    def contract(alert: dict) -> str:
        return json.dumps({k: v for k, v in alert.items() if k != "source"}, sort_keys=True)

    assert Counter((contract(a), a["source"]) for a in written) == Counter(
        (contract(a.to_dict()), "{}:{}".format(*a.event._origin)) for a in single)
    assert Counter(a.rule.kind for a in single)["correlation"] > 0
    assert f"kubehawk: {stats.events} events read; {stats.bad} bad records" in r.stderr
