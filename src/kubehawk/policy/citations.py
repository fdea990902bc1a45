"""Sources the policy linter cites, all of which a user can open: the Kubernetes documentation
for how the apiserver reads a policy, and the item IDs of the published standards (CIS
Kubernetes Benchmark, DISA Kubernetes STIG, NSA/CISA Kubernetes Hardening Guidance, PCI DSS,
NIST SP 800-190), whose documents are listed in :data:`STANDARDS`."""

from __future__ import annotations

__all__ = ["STANDARDS", "cite"]

_DOCS = "https://kubernetes.io/docs"
AUDIT = f"{_DOCS}/tasks/debug/debug-cluster/audit/"  # stages, levels, backends
AUDIT_POLICY = f"{AUDIT}#audit-policy"  # first matching rule wins; the example policy
_API = f"{_DOCS}/reference/config-api/apiserver-audit.v1/"
POLICY_API = f"{_API}#audit-k8s-io-v1-Policy"  # the fields (omitStages...)
POLICY_RULE_API = f"{_API}#audit-k8s-io-v1-PolicyRule"  # users, verbs, namespaces, resourceNames...
GROUP_RESOURCES_API = f"{_API}#audit-k8s-io-v1-GroupResources"  # group, "pods/*", "*/scale"
REQUEST_VERB = f"{_DOCS}/reference/access-authn-authz/authorization/#determine-the-request-verb"
RBAC_RESOURCE_NAMES = f"{_DOCS}/reference/access-authn-authz/rbac/#referring-to-resources"
API_RESOURCES = f"{_DOCS}/reference/kubectl/generated/kubectl_api-resources/"
GCE_POLICY = ("https://github.com/kubernetes/kubernetes/blob/master/cluster/gce/gci/configure-helper.sh "
              "(create-master-audit-policy)")

STANDARDS = {
    "CIS Kubernetes Benchmark": "https://www.cisecurity.org/benchmark/kubernetes",
    "DISA Kubernetes STIG": "https://public.cyber.mil/stigs/downloads/",
    "NSA/CISA Kubernetes Hardening Guidance": "https://media.defense.gov/2022/Aug/29/2003066362/-1/-1/0/"
                                              "CTR_KUBERNETES_HARDENING_GUIDANCE_1.2_20220829.PDF",
    "PCI DSS v4.0": "https://www.pcisecuritystandards.org/document_library/",
    "NIST SP 800-190": "https://csrc.nist.gov/pubs/sp/800/190/final",
}


def cite(*sources: str) -> str:
    """One finding's ``reference``: its sources, ``; ``-separated."""
    return "; ".join(sources)
