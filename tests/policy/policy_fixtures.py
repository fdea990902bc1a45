"""Shared data for the policy toolkit tests (a plain module: conftest names collide across test dirs)."""

from __future__ import annotations

# A policy that passes every policy check of the linter: noise dropped narrowly, secrets at
# Metadata, privileged writes with bodies, a Metadata catch-all, RequestReceived omitted.
GOOD = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/metrics", "/version"]},
        {"level": "None", "users": ["system:kube-proxy"], "verbs": ["watch"],
         "resources": [{"group": "", "resources": ["endpoints", "services", "services/status"]},
                       {"group": "discovery.k8s.io", "resources": ["endpointslices"]}]},
        {"level": "None", "userGroups": ["system:nodes"], "verbs": ["get", "update", "patch"],
         "resources": [{"group": "", "resources": ["nodes", "nodes/status"]}]},
        {"level": "None", "userGroups": ["system:nodes"], "namespaces": ["kube-node-lease"],
         "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "None", "users": ["system:kube-controller-manager", "system:kube-scheduler"],
         "namespaces": ["kube-system"], "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "None", "users": ["system:apiserver"], "verbs": ["get"],
         "resources": [{"group": "", "resources": ["namespaces"]}]},
        {"level": "None", "resources": [{"group": "", "resources": ["events"]}]},
        {"level": "Metadata",
         "resources": [{"group": "", "resources": ["secrets", "configmaps", "serviceaccounts/token"]},
                       {"group": "authentication.k8s.io", "resources": ["tokenreviews"]}]},
        {"level": "RequestResponse", "verbs": ["create", "update", "patch", "delete"],
         "resources": [{"group": "rbac.authorization.k8s.io"}, {"group": "admissionregistration.k8s.io"},
                       {"group": "apiextensions.k8s.io"}]},
        {"level": "RequestResponse", "verbs": ["create", "update", "patch"],
         "resources": [{"group": "", "resources": ["pods"]}, {"group": "apps"}, {"group": "batch"}]},
        {"level": "Metadata"},
    ],
}

