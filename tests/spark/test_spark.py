"""kubehawk.spark: the alerts of one process from Spark tasks (local mode, small inputs)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import zstandard

from kubehawk.config import Config
from kubehawk.detect import Detector, load_ruleset
from kubehawk.scale.local import Part, plan_parts, run_local
from kubehawk.spark import ALERT_COLUMNS, SparkRun, detect_dataframe, detect_files, read_lines
from kubehawk.spark.executors import local_path, scan_parts
from kubehawk.spark.job import write_alerts
from scaletools import CONFIG, cloud_records, key, mixed_lines, one_process, write

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"


def _contract(alert_key: str) -> str:
    """The part of :func:`scaletools.key` the Spark output holds: the alert contract's fields."""
    return json.dumps(json.loads(alert_key)[0], sort_keys=True)


def _rows(df) -> list[dict]:
    return [r.asDict(recursive=True) for r in df.collect()]


def _same(spark, paths: list[str], config: Config | None, max_split: int | None = None, documents=()):
    """One process over ``paths``; Spark over their lines, and ``documents`` read whole."""
    rules = load_ruleset(config, collect_errors=True)
    single, stats = one_process(paths, Detector(rules, config))
    if max_split:
        spark.conf.set("spark.sql.files.maxPartitionBytes", str(max_split))
        spark.conf.set("spark.sql.files.openCostInBytes", "0")
    try:
        run = SparkRun()
        lines = read_lines(spark, [p for p in paths if p not in documents] if documents else paths)
        if documents:
            lines = lines.union(read_lines(spark, list(documents), whole_files=True))
        rows = _rows(detect_dataframe(spark, lines, config, rules, run=run))
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        spark.conf.unset("spark.sql.files.openCostInBytes")
    got = Counter(json.dumps({k: v for k, v in r.items() if k not in ("source", "day")}, sort_keys=True)
                  for r in rows)
    assert got == Counter(_contract(key(a)) for a in single)
    assert (run.stats.events, run.stats.bad) == (stats.events, stats.bad)
    times = [r["time"] or "" for r in rows]
    assert times == sorted(times)
    return single, rows, run


def test_bundled_sample(spark):
    single, rows, _ = _same(spark, [str(ROOT / "examples" / "sample-audit.log")],
                            Config.load(ROOT / "examples" / "kubehawk.yaml"), max_split=20_000)
    assert len(rows) > 20
    assert list(rows[0]) == list(ALERT_COLUMNS)
    assert all(r["source"].startswith(str(ROOT / "examples" / "sample-audit.log")) for r in rows)


def test_correlations_and_first_seen_values_across_splits(spark, tmp_path):
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    log = write(tmp_path / "audit.log", mixed_lines(2500))
    single, rows, run = _same(spark, [str(log)], Config.load(cfg), max_split=16_000)  # ~40 splits
    assert Counter(a.rule.kind for a in single)["correlation"] >= 5
    assert run.stats.bad > 0 and any("malformed" in w or "JSON" in w for w in run.stats.warnings)
    blocks = {r["source"].split("@")[1].split(":")[0] for r in rows if "@" in r["source"]}
    assert len(blocks) > 5, "alerts must come from many splits of the file"


def test_falco_fixtures(spark):
    folder = CORPUS / "falco"
    if not folder.is_dir():
        pytest.skip(f"no Falco fixtures at {folder} (../shared/corpus)")
    _same(spark, [str(folder / "k8s_audit"), str(folder / "psp")], None)


def test_external_captures(spark):
    folder = CORPUS / "external-captures"
    if not folder.is_dir():
        pytest.skip(f"no external captures at {folder} (../shared/corpus)")
    from kubehawk.sources.folders import iter_files

    files = [f for f in iter_files(str(folder)) if not f.endswith(".md")]  # in the order one process reads
    documents = [f for f in files if f.endswith(".json")]  # pretty-printed: read whole
    assert documents
    _same(spark, files, None, max_split=1 << 16, documents=documents)


def test_managed_clouds_export_records(spark, tmp_path):
    """EKS, GKE and AKS records (Panther's tests) in many splits, on the DataFrame route and on
    detect_files' two routes: the alerts of one process."""
    cases = CORPUS / "panther" / "cases.jsonl"
    if not cases.is_file():
        pytest.skip(f"no Panther cases at {cases} (../shared/corpus)")
    log = str(write(tmp_path / "exports.jsonl", cloud_records(cases)))
    single, rows, _ = _same(spark, [log], None, max_split=40_000)
    assert len(rows) > 100
    for local_read in (True, False):
        got = _rows(detect_files(spark, log, part_bytes=40_000, min_splits=8, local_read=local_read))
        assert Counter(json.dumps({k: v for k, v in r.items() if k not in ("source", "day")}, sort_keys=True)
                       for r in got) == Counter(_contract(key(a)) for a in single), f"local_read={local_read}"


def _folder(tmp_path: Path, n: int, seed: int) -> tuple[Path, Config]:
    """A rotated plain file and a gzip file after it, and the config of the mixed log."""
    lines = mixed_lines(n, seed=seed)
    folder = tmp_path / "logs"
    folder.mkdir()
    write(folder / "audit-2026-11-23T09-00-00.000.log", lines[:n * 3 // 5])
    with gzip.open(folder / "audit.log.gz", "wt") as fh:
        fh.writelines(line + "\n" for line in lines[n * 3 // 5:])
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    return folder, Config.load(cfg)


def test_gzip_and_a_folder(spark, tmp_path):
    folder, config = _folder(tmp_path, 1200, seed=6)
    _same(spark, [str(folder)], config, max_split=8_000)


def test_a_folder_of_folders_is_read_at_every_depth(spark, tmp_path):
    """An archive kept by day (``audit/2026/11/23/*.log``, a gzip file among them): every file
    below the folder is read, as one process reads it, on each route (Spark's own listing reads
    a folder's top level only)."""
    lines = mixed_lines(1500, seed=33)
    root = tmp_path / "audit"
    for i, day in enumerate(("2026/11/22", "2026/11/23", "2026/11/23/late")):
        (root / day).mkdir(parents=True)
        write(root / day / "audit-2026-11-23T09-00-00.000.log", lines[i * 400:i * 400 + 300])
        with gzip.open(root / day / "audit-2026-11-23T10-00-00.000.log.gz", "wt") as fh:
            fh.writelines(line + "\n" for line in lines[i * 400 + 300:i * 400 + 400])
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    config = Config.load(cfg)
    rules = load_ruleset(config)
    single, stats = one_process([str(root)], Detector(rules, config))
    assert stats.files == 6 and single
    want = Counter(_contract(key(a)) for a in single)
    for local_read in (True, False):
        run = SparkRun()
        rows = _rows(detect_files(spark, str(root), config, rules, run=run, local_read=local_read))
        assert Counter(json.dumps({k: v for k, v in r.items() if k not in ("source", "day")}, sort_keys=True)
                       for r in rows) == want, f"local_read={local_read}"
        assert (run.stats.files, run.stats.events, run.stats.bad) == (stats.files, stats.events, stats.bad)
    _same(spark, [str(root)], config)  # a DataFrame of read_lines(folder)


def test_files_in_the_order_given_and_a_pattern_as_a_shell_expands_it(spark, tmp_path):
    """Files named out of time order are read in the order given, as one process reads them
    (the stateful rules' answer depends on it); a pattern is expanded as a shell expands it for
    ``detect`` (by name), a folder as detect lists it; on both routes."""
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    config = Config.load(cfg)
    rules = load_ruleset(config)
    lines = mixed_lines(1600, seed=35)
    early, late = write(tmp_path / "b-early.log", lines[:800]), write(tmp_path / "a-late.log", lines[800:])

    def one(paths):
        return Counter(_contract(key(a)) for a in one_process(paths, Detector(rules, config))[0])

    given = [str(late), str(early)]
    assert one(given) != one([str(early), str(late)]), "the order must matter to the alerts here"
    for paths, want in ((given, one(given)), ([str(tmp_path / "*.log")], one([str(late), str(early)]))):
        for local_read in (True, False):
            rows = _rows(detect_files(spark, paths, config, rules, local_read=local_read))
            assert Counter(json.dumps({k: v for k, v in r.items() if k not in ("source", "day")}, sort_keys=True)
                           for r in rows) == want, (paths, local_read)


def test_local_files_named_twice_are_read_once_on_both_routes(spark, tmp_path):
    """A folder, a file in it and a link to another file beside its target: read once each, as
    one process reads them, whichever route Spark takes."""
    logs = tmp_path / "logs"
    logs.mkdir()
    a = write(logs / "a.log", mixed_lines(900, seed=36))
    b = write(tmp_path / "b.log", mixed_lines(500, seed=37))
    os.symlink(b, tmp_path / "current.log")
    paths = [str(a), str(logs), str(tmp_path / "current.log"), str(b)]
    single, stats = one_process(paths, Detector(load_ruleset(None)))
    for local_read in (True, False):
        run = SparkRun()
        rows = _rows(detect_files(spark, paths, run=run, local_read=local_read))
        assert Counter(json.dumps({k: v for k, v in r.items() if k not in ("source", "day")}, sort_keys=True)
                       for r in rows) == Counter(_contract(key(a)) for a in single), local_read
        assert (run.stats.files, run.stats.events) == (stats.files, stats.events) == (2, stats.events)


def test_a_missing_local_path_is_named(spark, tmp_path):
    for local_read in (True, False):
        with pytest.raises(FileNotFoundError, match=r"nowhere\.log: no such file or directory"):
            detect_files(spark, [str(tmp_path / "nowhere.log")], local_read=local_read)


def test_a_minimum_level_drops_the_same_alerts(spark, tmp_path):
    log = str(write(tmp_path / "audit.log", mixed_lines(2500, seed=8)))
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    config = Config.load(cfg)
    rules = load_ruleset(config)
    single, _ = one_process([log], Detector(rules, config, min_level="medium"))
    assert single
    for local_read in (True, False):
        run = SparkRun()
        rows = _rows(detect_files(spark, log, config, rules, min_level="medium", run=run, local_read=local_read,
                                  part_bytes=30_000, min_splits=4))
        assert Counter(json.dumps({k: v for k, v in r.items() if k not in ("source", "day")}, sort_keys=True)
                       for r in rows) == Counter(_contract(key(a)) for a in single), local_read
        assert run.alerts_by_level == dict(Counter(a.rule.level for a in single))


def test_parquet_and_json_partitioned_by_day(spark, tmp_path):
    log = write(tmp_path / "audit.log", mixed_lines(600, seed=7))
    alerts = detect_dataframe(spark, read_lines(spark, str(log)))
    write_alerts(alerts, str(tmp_path / "pq"), "parquet")
    write_alerts(alerts, str(tmp_path / "js"), "json")
    assert [p.name for p in (tmp_path / "pq").iterdir() if p.is_dir()] == ["day=2026-11-23"]
    back = spark.read.parquet(str(tmp_path / "pq"))
    assert back.count() == alerts.count() > 0
    line = json.loads(next((tmp_path / "js" / "day=2026-11-23").glob("*.json")).read_text().splitlines()[0])
    assert set(line) == set(ALERT_COLUMNS) - {"day"}  # nulls written too: the contract's every field


def test_kubehawk_spark_command(tmp_path):
    """The command end to end (its own Spark session, in a subprocess); then a missing path, an
    output that exists, a master Spark would refuse and no Java: one line each, no stack."""
    pytest.importorskip("pyspark")
    log = write(tmp_path / "audit.log", mixed_lines(800, seed=2))
    out = tmp_path / "alerts"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    missing = subprocess.run([sys.executable, "-m", "kubehawk.spark", "--master", "local[1]", "-o", str(out),
                              str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=300, env=env)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert not [x for x in missing.stderr.splitlines() if x.startswith(("\tat ", "java."))]  # nor Java's
    assert missing.stderr.strip().splitlines()[-1].startswith("kubehawk spark: ")
    assert "nowhere" in missing.stderr.strip().splitlines()[-1]
    r = subprocess.run([sys.executable, "-m", "kubehawk.spark", "--master", "local[2]", "-o", str(out), str(log)],
                       capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    single, stats = one_process([str(log)], Detector(load_ruleset(None)))
    written = [json.loads(x) for p in out.glob("day=*/*.json") for x in p.read_text().splitlines()]
    assert len(written) == len(single) > 0
    assert f"kubehawk: {stats.events} events read; {stats.bad} bad records" in r.stderr
    assert "Spark start-up" in r.stderr
    again = subprocess.run([sys.executable, "-m", "kubehawk.spark", "--master", "local[1]", "-o", str(out), str(log)],
                           capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert again.returncode == 2 and "events read" not in again.stderr  # said before the run, not after
    assert again.stderr.splitlines()[-1] == f"kubehawk spark: --output {out}: already exists (--overwrite replaces it)"
    bad = subprocess.run([sys.executable, "-m", "kubehawk.spark", "--master", "locl[2]", "-o", str(tmp_path / "b"),
                          str(log)], capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("kubehawk spark: --master locl[2]")
    no_java = subprocess.run([sys.executable, "-m", "kubehawk.spark", "--master", "local[1]", "-o", str(tmp_path / "j"),
                              str(log)], capture_output=True, text=True, timeout=300,
                             env=dict(env, JAVA_HOME=str(tmp_path / "no-java")))
    assert no_java.returncode == 1 and "Traceback" not in no_java.stderr
    assert no_java.stderr.splitlines()[-1].startswith("kubehawk spark: Spark did not start: ")


def test_detect_files_reads_each_file_in_splits_as_bytes(spark, tmp_path):
    """The textFile route (forced here; taken for s3a://, gs://, hdfs://...): one process's alerts,
    counts and warnings."""
    folder, config = _folder(tmp_path, 2000, seed=15)
    rules = load_ruleset(config)
    single, stats = one_process([str(folder)], Detector(rules, config))
    run = SparkRun()
    rows = _rows(detect_files(spark, str(folder), config, rules, run=run, min_splits=6, local_read=False))
    got = Counter(json.dumps({k: v for k, v in r.items() if k not in ("source", "day")}, sort_keys=True) for r in rows)
    assert got == Counter(_contract(key(a)) for a in single)
    assert (run.stats.files, run.stats.lines, run.stats.events, run.stats.bad) == (
        stats.files, stats.lines, stats.events, stats.bad)
    assert any("#" in r["source"] for r in rows), "alerts must come from later splits of the plain file"


def test_spark_submit_runs_the_command_file(tmp_path):
    """``spark-submit .../kubehawk/spark/__main__.py``: what the README tells cluster users to run."""
    import kubehawk.spark.__main__ as entry

    submit = Path(sys.executable).parent / "spark-submit"
    if not submit.exists():
        pytest.skip(f"no spark-submit beside {sys.executable}")
    log = write(tmp_path / "audit.log", mixed_lines(300, seed=16))
    out = tmp_path / "alerts"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    r = subprocess.run([str(submit), "--master", "local[1]", entry.__file__, "--format", "parquet", "-o", str(out),
                        str(log)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    # spark-submit runs the Python driver as its child and passes on its output on stdout
    assert "events read" in r.stdout + r.stderr
    assert list(out.glob("day=*/*.parquet")), [str(p) for p in out.rglob("*")]


# --- detect_files' local-read route: the parts of detect --workers, one Spark task each ----------


def _same_as_one_process(spark, paths: list[str], config: Config | None, **kw) -> tuple[list[dict], SparkRun]:
    """``detect_files`` over ``paths`` gives the alerts of one process, each with the origin one
    process names (``path:line`` of the whole file), its read counters, and the warnings of
    ``detect --workers``."""
    rules = load_ruleset(config, collect_errors=True)
    single, stats = one_process(paths, Detector(rules, config))
    run = SparkRun()
    rows = _rows(detect_files(spark, paths, config, rules, run=run, **kw))
    got = Counter(json.dumps([{k: v for k, v in r.items() if k not in ("source", "day")}, r["source"]], sort_keys=True)
                  for r in rows)
    o = [a.event._origin for a in single]
    want = Counter(json.dumps([json.loads(_contract(key(a))), f"{p}:{n}"], sort_keys=True)
                   for a, (p, n) in zip(single, o, strict=True))
    assert got == want
    assert (run.stats.files, run.stats.lines, run.stats.events, run.stats.bad) == (
        stats.files, stats.lines, stats.events, stats.bad)
    # the warnings of detect --workers (a whole-file part shows a file's first few, then "… and N more")
    _, local = run_local(paths, Detector(rules, config), 2, part_bytes=kw.get("part_bytes"))
    assert run.stats.warnings == local.stats.warnings
    times = [r["time"] or "" for r in rows]
    assert times == sorted(times)
    return rows, run


def test_local_read_of_a_file_cut_into_byte_ranges(spark, tmp_path):
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    log = write(tmp_path / "audit.log", mixed_lines(2500, seed=21))
    parts = plan_parts([str(log)], 2, 40_000)
    assert len(parts) > 10 and all(p.end is not None for p in parts)
    rows, run = _same_as_one_process(spark, [str(log)], Config.load(cfg), part_bytes=40_000)
    lines = [int(r["source"].rsplit(":", 1)[1]) for r in rows]
    assert max(lines) > 2000, "alerts from the file's last ranges, numbered as in the whole file"
    assert run.stats.bad > 0


def test_local_read_of_a_folder_of_several_files(spark, tmp_path):
    lines = mixed_lines(3000, seed=22)
    folder = tmp_path / "logs"
    folder.mkdir()
    write(folder / "audit-2026-11-23T08-00-00.000.log", lines[:900])
    write(folder / "audit-2026-11-23T09-00-00.000.log", lines[900:1500])
    with gzip.open(folder / "audit-2026-11-23T10-00-00.000.log.gz", "wt") as fh:
        fh.writelines(line + "\n" for line in lines[1500:2200])
    write(folder / "audit.log", lines[2200:])
    (tmp_path / "k.yaml").write_text(CONFIG)
    rows, run = _same_as_one_process(spark, [str(folder)], Config.load(tmp_path / "k.yaml"), part_bytes=30_000)
    assert run.stats.files == 4
    assert {r["source"].rsplit(":", 1)[0].rsplit("/", 1)[1] for r in rows} >= {
        "audit-2026-11-23T08-00-00.000.log", "audit-2026-11-23T10-00-00.000.log.gz", "audit.log"}


def test_local_read_of_a_gzip_file(spark, tmp_path):
    path = tmp_path / "audit log.jsonl.gz"  # a space: Spark lists it as file:...audit%20log.jsonl.gz
    with gzip.open(path, "wt") as fh:
        fh.writelines(line + "\n" for line in mixed_lines(1500, seed=23))
    (tmp_path / "k.yaml").write_text(CONFIG)
    rows, _ = _same_as_one_process(spark, [str(path)], Config.load(tmp_path / "k.yaml"), part_bytes=4_000)
    assert rows and all(r["source"].startswith(f"{path}:") for r in rows)


def test_local_files_in_a_codec_only_hadoop_reads_take_the_textfile_route(spark, tmp_path):
    """A local file Spark itself compressed with deflate (Hadoop's DefaultCodec: kubehawk's
    reader knows gzip, bzip2 and xz only) is read decompressed, as textFile reads it: the alerts
    of one process over its plain lines, not a file of bad records."""
    lines = mixed_lines(800, seed=2)
    folder = tmp_path / "deflated"
    spark.sparkContext.parallelize(lines, 1).saveAsTextFile(
        str(folder), compressionCodecClass="org.apache.hadoop.io.compress.DefaultCodec")
    assert [p.name for p in folder.glob("part-*")] == ["part-00000.deflate"]
    single, stats = one_process([str(write(tmp_path / "plain.log", lines))], Detector(load_ruleset(None)))
    run = SparkRun()
    rows = _rows(detect_files(spark, str(folder), run=run))
    assert Counter(json.dumps({k: v for k, v in r.items() if k not in ("source", "day")}, sort_keys=True)
                   for r in rows) == Counter(_contract(key(a)) for a in single)
    assert (run.stats.events, run.stats.bad) == (stats.events, stats.bad) and single


def test_local_zstd_files_are_read_by_the_executors_themselves(spark, tmp_path):
    """zstd, which Hadoop reads only with its native library, is read on the local route by
    kubehawk's own reader (the zstandard package), not sent to textFile."""
    lines = mixed_lines(900, seed=38)
    log = tmp_path / "audit.log.zst"
    log.write_bytes(zstandard.compress("".join(line + "\n" for line in lines).encode()))
    single, stats = one_process([str(write(tmp_path / "plain.log", lines))], Detector(load_ruleset(None)))
    run = SparkRun()
    rows = _rows(detect_files(spark, str(log), run=run))
    assert Counter(json.dumps({k: v for k, v in r.items() if k not in ("source", "day")}, sort_keys=True)
                   for r in rows) == Counter(_contract(key(a)) for a in single) and single
    assert (run.stats.events, run.stats.bad) == (stats.events, stats.bad)
    assert {r["source"].rsplit(":", 1)[0] for r in rows} == {str(log)}  # path:line, as one process names it


def test_forced_textfile_route_gives_the_same_alerts(spark, tmp_path):
    folder, config = _folder(tmp_path, 1500, seed=24)
    rules = load_ruleset(config)
    fast, slow = SparkRun(), SparkRun()
    local_rows = _rows(detect_files(spark, str(folder), config, rules, run=fast, part_bytes=20_000))
    text_rows = _rows(detect_files(spark, str(folder), config, rules, run=slow, local_read=False, min_splits=4))

    def contract(rows):
        return Counter(json.dumps({k: v for k, v in r.items() if k != "source"}, sort_keys=True) for r in rows)

    assert contract(local_rows) == contract(text_rows) and local_rows
    assert not any("#" in r["source"] for r in local_rows)
    assert any("#" in r["source"] for r in text_rows)  # the textFile route names later splits file#n
    assert (fast.stats.lines, fast.stats.events, fast.stats.bad) == (slow.stats.lines, slow.stats.events,
                                                                     slow.stats.bad)


def test_a_bad_line_in_a_later_range_is_named_by_its_line_in_the_file(spark, tmp_path):
    lines = [x for x in mixed_lines(1200, seed=25) if "broken" not in x]
    offset, bad_at = 0, 1  # the bad line goes half-way into the second range of 100 kB
    while offset < 150_000:
        offset += len(lines[bad_at - 1]) + 1
        bad_at += 1
    lines.insert(bad_at - 1, '{"kind":"Event","verb": nope')
    log = write(tmp_path / "audit.log", lines)
    second = plan_parts([str(log)], 2, 100_000)[1]
    assert second.start <= offset < second.end and bad_at > 200, "the bad line must lie in the second byte range"
    run = SparkRun()
    detect_files(spark, str(log), run=run, part_bytes=100_000).count()
    assert run.stats.bad == 1
    assert [w.split(": ")[0] for w in run.stats.warnings] == [f"{log}:{bad_at}"]


def test_which_paths_the_executors_open_themselves():
    assert local_path("file:///data/audit%20logs/a.log") == "/data/audit logs/a.log"
    assert local_path("file:/data/a.log") == "/data/a.log"
    assert local_path("/data/a.log") == "/data/a.log"
    for remote in ("s3a://bucket/audit/a.log", "gs://b/a.log", "hdfs://nn:8020/a.log", "abfss://c@a.dfs/x.log"):
        assert local_path(remote) is None


def test_an_executor_that_cannot_see_a_file_fails_the_run(tmp_path):
    """On a cluster whose executors do not mount the driver's files, a part is never counted as read."""
    with pytest.raises(FileNotFoundError, match="nowhere.log: not found by the executor on .*local_read=False"):
        list(scan_parts(0, None, 1 << 20, iter([Part(str(tmp_path / "nowhere.log"), 0, 100)])))


def test_a_part_an_executor_cannot_read_fails_the_whole_run(spark, tmp_path, monkeypatch):
    """Parts come back a group of tasks at a time while the driver merges: a failed group fails
    the run (its later groups cancelled), it is never merged without its part."""
    import kubehawk.spark.job as job

    log = write(tmp_path / "audit.log", mixed_lines(1500, seed=26))

    def with_a_lost_part(files, workers, part_bytes=None, **kw):
        parts = plan_parts(files, workers, part_bytes, **kw)
        return parts[:3] + [Part(str(tmp_path / "gone.log"))] + parts[3:]

    monkeypatch.setattr(job, "plan_parts", with_a_lost_part)
    with pytest.raises(Exception, match="gone.log: not found by the executor"):
        detect_files(spark, str(log), part_bytes=40_000)
    monkeypatch.undo()
    assert detect_files(spark, str(log), part_bytes=40_000).count() > 0  # the session is still usable


def test_persistent_baseline_store_read_before_and_updated_after(spark, tmp_path):
    """Two runs after each other on one baseline store: on the driver, the second knows what
    the first learned, as with one process (both routes: files read by the executors, and
    textFile's)."""
    import sqlite3

    lines = mixed_lines(2000, seed=4)
    days = [write(tmp_path / "day1.log", lines[:1000]), write(tmp_path / "day2.log", lines[1000:])]

    def runs(name: str, detect) -> tuple[list[Counter], list[tuple]]:
        store = tmp_path / f"{name}.sqlite"
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(CONFIG + f"  path: {store}\n")
        config = Config.load(cfg)
        got = [Counter(detect(str(log), config)) for log in days]
        db = sqlite3.connect(store)
        try:
            return got, sorted(db.execute("SELECT rule, key, value, first, last FROM seen").fetchall())
        finally:
            db.close()

    def single(path, config):
        return [_contract(key(a)) for a in one_process([path], Detector(load_ruleset(config), config))[0]]

    def on_spark(local_read: bool):
        def detect(path, config):
            df = detect_files(spark, path, config, part_bytes=30_000, min_splits=4, local_read=local_read)
            return [json.dumps({k: v for k, v in r.items() if k not in ("source", "day")}, sort_keys=True)
                    for r in _rows(df)]
        return detect

    want, rows = runs("one", single)
    alone = tmp_path / "alone.yaml"  # day 2 on a store of its own: what the store remembered matters
    alone.write_text(CONFIG + f"  path: {tmp_path / 'alone.sqlite'}\n")
    assert rows and Counter(single(str(days[1]), Config.load(alone))) != want[1]
    for route in (True, False):
        assert runs(f"spark-{route}", on_spark(route)) == (want, rows), f"local_read={route}"
