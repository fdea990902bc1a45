"""Where a workload's pod spec lives, which registry an image comes from, and what an exec runs.

Takes a request or response body (any workload kind, a patch) or an exec request, and gives
the pod spec (:func:`pod_spec_of`), an image's registry host (:func:`image_registry`) and the
exec's command, container and flags (:func:`_exec_info`): what the ``x.pod_spec``,
``x.containers``, ``x.images``, ``x.registry`` and ``x.exec.*`` fields of :mod:`kubehawk.enrich`
are made from.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from kubehawk.event import AuditEvent

__all__ = ["SHELLS", "WORKLOAD_RESOURCES", "image_registry", "pod_spec_of"]

WORKLOAD_RESOURCES = frozenset(
    {"pods", "deployments", "statefulsets", "daemonsets", "replicasets", "replicationcontrollers", "jobs",
     "cronjobs", "podtemplates"}
)
_TEMPLATE_KINDS = {
    "Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets",
    "ReplicaSet": "replicasets", "ReplicationController": "replicationcontrollers", "Job": "jobs",
    "CronJob": "cronjobs", "Pod": "pods", "PodTemplate": "podtemplates",
}
SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox",
                    "pwsh", "powershell", "cmd", "cmd.exe"})
# Subresources through which a pod spec is written: the object itself and ephemeral containers.
_SPEC_SUBRESOURCES = (None, "ephemeralcontainers")

def _dig(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def _from_json_patch(ops: list[Any]) -> dict[str, Any]:
    """Fold JSON-patch add/replace operations into the object they would produce.

    So ``[{"op": "add", "path": "/spec/containers/0/securityContext/privileged", "value": true}]``
    is seen by rules exactly like a full object with that field.
    """
    root: dict[str, Any] = {}
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace") or not isinstance(op.get("path"), str):
            continue
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        if not parts:
            if isinstance(op.get("value"), dict):
                root.update(op["value"])
            continue
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt_is_index = not last and (parts[i + 1].isdigit() or parts[i + 1] == "-")
            if isinstance(node, list):
                idx = len(node) if part == "-" else int(part) if part.isdigit() else None
                if idx is None:
                    break
                while len(node) <= idx:
                    node.append({})
                if last:
                    node[idx] = op.get("value")
                else:
                    if not isinstance(node[idx], (dict, list)):
                        node[idx] = [] if nxt_is_index else {}
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = op.get("value")
                else:
                    if not isinstance(node.get(part), (dict, list)):
                        node[part] = [] if nxt_is_index else {}
                    node = node[part]
            else:
                break
    return root


def pod_spec_of(obj: Any, resource: str | None) -> dict[str, Any] | None:
    """The pod spec inside a Pod or workload object (or a patch of one)."""
    if isinstance(obj, list):
        obj = _from_json_patch(obj)
    if not isinstance(obj, dict):
        return None
    kind = obj.get("kind")
    res = _TEMPLATE_KINDS.get(kind, resource) if isinstance(kind, str) else resource
    if res == "pods":
        spec = obj.get("spec")
    elif res == "cronjobs":
        spec = _dig(obj, "spec", "jobTemplate", "spec", "template", "spec")
    elif res == "podtemplates":
        spec = _dig(obj, "template", "spec")
    elif res in WORKLOAD_RESOURCES:
        spec = _dig(obj, "spec", "template", "spec")
    else:
        spec = None
    return spec if isinstance(spec, dict) else None


def image_registry(image: str) -> str:
    """The registry host of an image reference, as the container runtime resolves it."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return "docker.io"


def _exec_options(body: Any) -> dict[str, list[str]] | None:
    """PodExecOptions from a request body, shaped like the query string (rulepack2).

    Admission-webhook sources, GKE (``protoPayload.request``) and apiservers that log the
    options object carry the command there, not in the requestURI.
    """
    if not isinstance(body, dict) or not isinstance(body.get("command"), list):
        return None
    out: dict[str, list[str]] = {"command": [str(c) for c in body["command"] if isinstance(c, (str, int, float))]}
    if isinstance(body.get("container"), str):
        out["container"] = [body["container"]]
    for flag in ("tty", "stdin"):
        if body.get(flag) is True:
            out[flag] = ["true"]
    return out


def _uri_path(uri: str) -> str:
    """``urlsplit(uri).path``, without its cost for the usual ``/path?query`` form."""
    if uri[:1] == "/" and uri[1:2] != "/" and "\t" not in uri and "\r" not in uri and "\n" not in uri:
        return uri.partition("#")[0].partition("?")[0]
    return urlsplit(uri).path


def _exec_info(event: AuditEvent) -> dict[str, Any] | None:
    if event.ref("subresource") not in _EXEC_SUBRESOURCES:
        return None
    query = parse_qs(urlsplit(event.head.requestURI or "").query)
    if "command" not in query and event.has_request_object:
        query = _exec_options(event.request_object) or query
    command = query.get("command", [])
    first = posixpath.basename(command[0]) if command else ""
    second = posixpath.basename(command[1]) if len(command) > 1 else ""
    shell = first in SHELLS or (first in ("env", "busybox", "nsenter", "chroot") and second in SHELLS)

    def flag(name: str) -> bool:
        return any(v.lower() in ("true", "1") for v in query.get(name, []))

    container = query.get("container", [None])[0]
    return {
        "command": command,
        "command_line": " ".join(command),
        "container": container,
        "shell": shell,
        "tty": flag("tty"),
        "stdin": flag("stdin"),
    }


_EXEC_SUBRESOURCES = ("exec", "attach", "portforward")
