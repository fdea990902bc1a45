"""Every third-party audit corpus under ../shared/corpus as streams of audit Events.

One loader per corpus, each yielding ``(stream, events)``: a stream is what one Detector sees in
order (one audit log file; one Panther case, since those are standalone fixtures). Used by the
false-positive gate and the Metadata-stripping property test. Nothing here is copied into the
repository; an absent corpus yields nothing (callers skip).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

from kubehawk.event import AuditEvent, EventDecodeError, event_from_dict
from kubehawk.sources.normalize import SkipRecord, line_to_events, to_events

from helpers import CORPUS

MINIKUBE = CORPUS / "external-captures" / "minikube-labs"
SEKOIA = CORPUS / "external-captures" / "sekoia"
FALCO = CORPUS / "falco"
PANTHER = CORPUS / "panther" / "cases.jsonl"
KAR = CORPUS / "kube-audit-rest" / "kube-audit-rest.log"
PERFSPEC = CORPUS / "perfspec_k8s_event_dataset" / "audit-logs.csv"

Stream = tuple[str, list[AuditEvent]]


def _lines(path: Path) -> list[AuditEvent]:
    """A JSON-lines file through the same reader path `kubehawk detect` uses; bad lines are skipped."""
    out: list[AuditEvent] = []
    for i, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.extend(line_to_events(line, f"{path.name}:{i}"))
        except (EventDecodeError, SkipRecord):
            continue  # falco's fal_01_003.json is malformed on purpose
    return out


def minikube() -> Iterator[Stream]:
    for p in sorted(MINIKUBE.glob("*.audit.log")):
        yield p.name, _lines(p)


def sekoia() -> Iterator[Stream]:
    for name in ("events.jsonl", "gke_events.jsonl"):
        p = SEKOIA / name
        if p.is_file():
            yield name, _lines(p)


def falco() -> Iterator[Stream]:
    for sub in ("k8s_audit", "psp"):
        for p in sorted((FALCO / sub).glob("*.json")):
            yield f"{sub}/{p.name}", _lines(p)


def panther() -> Iterator[Stream]:
    if not PANTHER.is_file():
        return
    for i, line in enumerate(PANTHER.read_text().splitlines(), 1):
        if not line.strip():
            continue
        case = json.loads(line)
        try:
            events = list(to_events(case["event"], f"panther:{i}"))
        except (EventDecodeError, SkipRecord):
            continue
        yield f"{case['rule_id']}: {case['test_name']}", events


def kube_audit_rest() -> Iterator[Stream]:
    if KAR.is_file():
        yield KAR.name, _lines(KAR)


_NS = re.compile(r"/namespaces/([^/?]+)/")
_GROUP = re.compile(r"^/apis/([^/]+)/")


def perfspec_events() -> Iterator[AuditEvent]:
    """The flattened CSV back into audit Events (namespace and apiGroup recovered from the URI)."""
    with PERFSPEC.open(newline="") as f:
        for i, row in enumerate(csv.reader(f), 1):
            if len(row) < 15:
                continue  # the final line is truncated upstream
            _host, ts, user, verb, res, sub, name, _rname, uri, aid, stage, code = row[:12]
            ref = {k: v for k, v in (("resource", res), ("subresource", sub), ("name", name)) if v}
            m = _NS.search(uri)
            if m and not (res == "namespaces" and not sub):
                ref["namespace"] = m.group(1)
            g = _GROUP.match(uri)
            if g:
                ref["apiGroup"] = g.group(1)
            d = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": aid,
                 "stage": stage, "requestURI": uri, "verb": verb, "user": {"username": user},
                 "objectRef": ref, "requestReceivedTimestamp": ts, "stageTimestamp": ts}
            if code:
                d["responseStatus"] = {"code": int(code)}
            yield event_from_dict(d, origin=f"audit-logs.csv:{i}")


def perfspec() -> Iterator[Stream]:
    if PERFSPEC.is_file():
        yield PERFSPEC.name, list(perfspec_events())


CORPORA = {"minikube-labs": minikube, "sekoia": sekoia, "falco": falco, "panther": panther,
           "kube-audit-rest": kube_audit_rest, "perfspec": perfspec}


def strip_to_metadata(event: AuditEvent) -> AuditEvent:
    """The same event as a Metadata-level policy would have logged it: no bodies, level Metadata."""
    d = event.to_dict()
    d.pop("requestObject", None)
    d.pop("responseObject", None)
    d["level"] = "Metadata"
    return event_from_dict(d, origin=event.origin)


def as_dict_event(event: AuditEvent) -> AuditEvent:
    """The event rebuilt from its dict, so that the full and stripped runs take the same decode path."""
    return event_from_dict(event.to_dict(), origin=event.origin)
