"""Hand-written audit events for the built-in rule tests (never copied from the corpora)."""

from __future__ import annotations

import copy
import itertools
from typing import Any
from urllib.parse import quote

_ids = itertools.count(1)


def ev(verb: str, resource: str | None = None, *, ns: str | None = "default", name: str | None = None,
       sub: str | None = None, user: str = "alice@example.com", groups: list[str] | None = None,
       body: Any = None, resp: Any = None, uri: str | None = None, code: int | None = 200,
       decision: str | None = "allow", stage: str = "ResponseComplete", ua: str = "kubectl/v1.30.1",
       extra: dict | None = None, imp: dict | None = None, time: str = "2025-06-03T10:00:00.000000Z",
       group: str | None = None, annotations: dict | None = None, ip: str = "10.0.0.5",
       level: str | None = None) -> dict[str, Any]:
    """A plausible audit Event; every argument is one field a rule may read."""
    ref: dict[str, Any] = {}
    if resource:
        ref["resource"] = resource
    if ns:
        ref["namespace"] = ns
    if name:
        ref["name"] = name
    if sub:
        ref["subresource"] = sub
    if group is not None:
        ref["apiGroup"] = group
    if uri is None:
        base = f"/apis/{group}/v1" if group else "/api/v1"
        uri = base + (f"/namespaces/{ns}" if ns else "") + (f"/{resource}" if resource else "")
        uri += (f"/{name}" if name else "") + (f"/{sub}" if sub else "")
    ann = {} if decision is None else {"authorization.k8s.io/decision": decision}
    ann.update(annotations or {})
    d: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1",
        "level": level or ("RequestResponse" if resp is not None else "Request" if body is not None else "Metadata"),
        "auditID": f"test-{next(_ids)}", "stage": stage, "requestURI": uri, "verb": verb,
        "user": {"username": user, "groups": groups or ["system:authenticated"]},
        "sourceIPs": [ip], "userAgent": ua, "objectRef": ref,
        "requestReceivedTimestamp": time, "stageTimestamp": time, "annotations": ann,
    }
    if extra:
        d["user"]["extra"] = extra
    if imp:
        d["impersonatedUser"] = imp
    if code is not None:
        d["responseStatus"] = {"code": code}
    if body is not None:
        d["requestObject"] = copy.deepcopy(body)
    if resp is not None:
        d["responseObject"] = copy.deepcopy(resp)
    return d


def sa(ns: str, name: str) -> str:
    return f"system:serviceaccount:{ns}:{name}"


def container(image: str = "nginx:1.27", name: str = "app", **sc: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": image}
    if sc:
        c["securityContext"] = sc
    return c


def pod(*containers: dict, init: list | None = None, ephemeral: list | None = None, owner: bool = False,
        name: str = "web", **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"containers": list(containers) or [container()], **spec}
    if init:
        s["initContainers"] = init
    if ephemeral:
        s["ephemeralContainers"] = ephemeral
    meta: dict[str, Any] = {"name": name}
    if owner:
        meta = {"generateName": name + "-", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name + "-5d8", "uid": "u1", "controller": True}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": s}


def deployment(*containers: dict, name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": name}},
                                                  "spec": {"containers": list(containers) or [container()], **spec}}}}


def cronjob(*containers: dict, name: str = "nightly", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {
                "spec": {"containers": list(containers) or [container()], "restartPolicy": "Never", **spec}}}}}}


def binding(role: str, *subjects: dict, kind: str = "ClusterRoleBinding", name: str = "b") -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": list(subjects)}


def role(*rules: dict, kind: str = "ClusterRole", name: str = "r") -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "rules": list(rules)}


def rule(resources: list[str], verbs: list[str], groups: list[str] | None = None) -> dict[str, Any]:
    return {"apiGroups": groups or [""], "resources": resources, "verbs": verbs}


def exec_uri(ns: str, pod_name: str, *command: str, sub: str = "exec", tty: bool = True) -> str:
    q = "&".join(f"command={quote(c, safe='')}" for c in command)
    q += "&container=app&stdin=true&stdout=true" + ("&tty=true" if tty else "")
    return f"/api/v1/namespaces/{ns}/pods/{pod_name}/{sub}?{q}"


def exec_ev(ns: str, pod_name: str, *command: str, verb: str = "create", sub: str = "exec", tty: bool = True,
            **kw: Any) -> dict:
    kw.setdefault("code", 101)
    kw.setdefault("stage", "ResponseStarted")
    return ev(verb, "pods", ns=ns, name=pod_name, sub=sub, uri=exec_uri(ns, pod_name, *command, sub=sub, tty=tty), **kw)
