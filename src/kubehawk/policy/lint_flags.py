"""Lint checks on the kube-apiserver's audit flags, read from its static-pod manifest."""

from __future__ import annotations

from pathlib import Path

from kubehawk.policy.findings import _Ctx
from kubehawk.policy.flags import ApiserverFlags

# --- flags -----------------------------------------------------------------------------------

_FLAG_IDS = ("CIS-1.2.16", "CIS-1.2.17", "CIS-1.2.18", "CIS-1.2.19", "STIG-V-242398", "STIG-V-242402",
             "STIG-V-242461", "STIG-V-242462", "STIG-V-242463", "STIG-V-242464", "STIG-V-242465", "NSA-LOG-1",
             "NSA-LOG-3", "NSA-LOG-4", "PCI-10.5.1")


def _flag_checks(ctx: _Ctx, f: ApiserverFlags | None) -> None:
    if f is None:
        for cid in _FLAG_IDS:
            ctx.report.skipped[cid] = "needs --apiserver-manifest"
        return
    src = f.source or "apiserver flags"

    def need_int(cid: str, flag: str, minimum: int, ref: str, sev: str = "high") -> None:
        v = f.int_flag(flag)
        raw = f.get(flag)
        if raw is None:
            ctx.add(cid, sev, f"{src}: --{flag} is not set (checks need the flag on the command line; the binary "
                    "default does not count)", f"Add --{flag}={max(minimum, 1)} or more.", None, ref)
        elif v is None or v < minimum:
            ctx.add(cid, sev, f"{src}: --{flag}={raw} is below {minimum}", f"Set --{flag}={minimum} or more.", None, ref)
        else:
            ctx.ok(cid)

    path = f.get("audit-log-path")
    if not path:
        ctx.add("CIS-1.2.16", "high", f"{src}: --audit-log-path is not set: the log backend is off",
                "Set --audit-log-path=/var/log/kubernetes/audit/audit.log.", None, "CIS Kubernetes 1.2.16")
        ctx.add("STIG-V-242402", "high", f"{src}: --audit-log-path is not set", "Set --audit-log-path.", None,
                "DISA STIG V-242402 (CNTR-K8-000610)")
    else:
        ctx.ok("STIG-V-242402")
        if path == "-":
            ctx.add("CIS-1.2.16", "low", f"{src}: --audit-log-path=- writes to stdout: passes CIS but not STIG",
                    "Write to a file on a host-mounted path.", None, "CIS Kubernetes 1.2.16")
        else:
            ctx.ok("CIS-1.2.16")
    if not path or path == "-" or not path.startswith("/"):
        ctx.add("STIG-V-242465", "medium", f"{src}: --audit-log-path {path!r} is not an absolute file path",
                "Use an absolute path on a hostPath mount.", None, "DISA STIG V-242465 (CNTR-K8-003320)")
    elif f.static_pod and not f.host_mounted(path):
        ctx.add("STIG-V-242465", "medium", f"{src}: {path} is not on a hostPath volume of the apiserver Pod: the log "
                "is lost with the container", "Mount the log directory from the host.", None,
                "DISA STIG V-242465 (CNTR-K8-003320)")
    else:
        ctx.ok("STIG-V-242465")
    need_int("CIS-1.2.17", "audit-log-maxage", 30, "CIS Kubernetes 1.2.17")
    need_int("CIS-1.2.18", "audit-log-maxbackup", 10, "CIS Kubernetes 1.2.18")
    need_int("CIS-1.2.19", "audit-log-maxsize", 100, "CIS Kubernetes 1.2.19")
    need_int("STIG-V-242464", "audit-log-maxage", 30, "DISA STIG V-242464 (CNTR-K8-003310)", "medium")
    need_int("STIG-V-242463", "audit-log-maxbackup", 10, "DISA STIG V-242463 (CNTR-K8-003300)", "medium")
    need_int("STIG-V-242462", "audit-log-maxsize", 100, "DISA STIG V-242462 (CNTR-K8-003290)", "medium")
    gates = f.feature_gates()
    if gates.get("DynamicAuditing", "").lower() == "true" or f.has("audit-dynamic-configuration"):
        ctx.add("STIG-V-242398", "high", f"{src}: dynamic auditing is enabled", "Remove DynamicAuditing and "
                "--audit-dynamic-configuration (removed in 1.19; a start-up error on modern releases).", None,
                "DISA STIG V-242398 (CNTR-K8-000450)")
    else:
        ctx.ok("STIG-V-242398")
    if not f.get("audit-policy-file"):
        ctx.add("STIG-V-242461", "critical", f"{src}: --audit-policy-file is not set: nothing is audited, whatever "
                "the backends", "Set --audit-policy-file.", None, "DISA STIG V-242461 (CNTR-K8-003280); CIS Kubernetes 3.2.1")
    elif ctx.policy is None or any(x.id == "POL-INVALID" for x in ctx.report.findings):
        ctx.add("STIG-V-242461", "critical", f"{src}: the audit policy does not load", "Fix the policy errors.", None,
                "DISA STIG V-242461 (CNTR-K8-003280)")
    else:
        ctx.ok("STIG-V-242461")
    webhook = f.get("audit-webhook-config-file")
    if f.get("audit-policy-file") and ((path and path != "") or webhook):
        ctx.ok("NSA-LOG-1")
    else:
        ctx.add("NSA-LOG-1", "critical", f"{src}: audit logging is not enabled (needs --audit-policy-file and a log "
                "or webhook backend)", "Set --audit-policy-file and --audit-log-path or --audit-webhook-config-file.",
                None, "NSA/CISA Kubernetes Hardening Guidance, App. M")
    maxage = f.int_flag("audit-log-maxage")
    ctx.add("NSA-LOG-3", "info", f"{src}: local retention --audit-log-maxage={f.get('audit-log-maxage') or 'unset'} "
            f"days (NSA/CISA example: 1825); {'logs are also shipped off-cluster' if webhook else 'no webhook backend'}",
            "Ship logs off-cluster for long retention.", None, "NSA/CISA Kubernetes Hardening Guidance, App. M")
    if not webhook:
        ctx.add("NSA-LOG-4", "medium", f"{src}: no --audit-webhook-config-file: logs stay on the control-plane node",
                "Ship the audit log to an external, append-only store (webhook backend or a node forwarder).", None,
                "NSA/CISA Kubernetes Hardening Guidance, App. N; PCI DSS v4.0 10.3")
    else:
        _check_webhook(ctx, webhook, f)
    if webhook:
        ctx.ok("PCI-10.5.1")
    elif maxage is None or maxage < 90:
        ctx.add("PCI-10.5.1", "medium", f"{src}: logs are local only and --audit-log-maxage is "
                f"{f.get('audit-log-maxage') or 'unset'} (< 90 days immediately available)",
                "Keep >= 90 days locally (maxage and maxsize x maxbackup) or ship off-cluster for 12 months.", None,
                "PCI DSS v4.0 10.5.1")
    else:
        ctx.ok("PCI-10.5.1")


def _check_webhook(ctx: _Ctx, path: str, f: ApiserverFlags) -> None:
    import yaml

    ref = "NSA/CISA Kubernetes Hardening Guidance, App. N"
    mode = f.get("audit-webhook-mode") or "batch"
    try:
        cfg = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        ctx.add("NSA-LOG-4", "info", f"webhook kubeconfig {path} not readable here ({e.__class__.__name__}); TLS not "
                "checked", "Run the lint where the kubeconfig is readable.", None, ref)
        return
    before = len(ctx.report.findings)
    for c in (cfg or {}).get("clusters") or []:
        cl = (c or {}).get("cluster") or {}
        server = str(cl.get("server", ""))
        if not server.startswith("https://"):
            ctx.add("NSA-LOG-4", "high", f"{path}: webhook server {server!r} is not https", "Use TLS 1.2+.", None, ref)
        if cl.get("insecure-skip-tls-verify"):
            ctx.add("NSA-LOG-4", "high", f"{path}: insecure-skip-tls-verify is set", "Verify the receiver's "
                    "certificate (certificate-authority).", None, ref)
    if mode != "batch":
        ctx.add("NSA-LOG-4", "low", f"--audit-webhook-mode={mode}: every request waits for the receiver",
                "Use batch mode.", None, ref)
    ctx.result("NSA-LOG-4", before)
