#!/usr/bin/env python3
"""Checks the security properties the deployment files promise (docs/deployment.md), beyond
what a schema can say: every workload runs as non-root with a read-only root filesystem, no
privilege escalation, all capabilities dropped, the runtime seccomp profile, no service
account token, CPU and memory limits and both probes; the namespace enforces the restricted
Pod Security profile; a default-deny NetworkPolicy exists and the allow list is exactly the
documented one; the compose file hardens every long-running service the same way.

Usage: python3 deploy/check_manifests.py [repo root]. Prints one line per check and exits 1
if any failed. Needs PyYAML (installed with kubernetes-validate).
"""

import pathlib
import sys

import yaml

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
failures = []
passed = 0


def check(ok, what):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)
        print(f"FAIL {what}")


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


resources = []
for path in sorted((ROOT / "k8s" / "local").glob("*.yaml")):
    resources += [(path.name, d) for d in docs(path)]

by_kind = {}
for name, d in resources:
    by_kind.setdefault(d["kind"], []).append((name, d))

# --- namespace -----------------------------------------------------------------------------
namespaces = by_kind.get("Namespace", [])
check(len(namespaces) == 1, "exactly one Namespace")
for _, ns in namespaces:
    labels = ns["metadata"].get("labels", {})
    check(labels.get("pod-security.kubernetes.io/enforce") == "restricted",
          "namespace enforces the restricted Pod Security profile")

# --- workloads -----------------------------------------------------------------------------
workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
check(len(workloads) >= 4, "api, ollama, redis and postgres workloads exist")
apps = set()
for file, w in workloads:
    name = w["metadata"]["name"]
    pod = w["spec"]["template"]["spec"]
    apps.add(w["spec"]["template"]["metadata"]["labels"]["app"])
    psc = pod.get("securityContext", {})
    check(pod.get("automountServiceAccountToken") is False, f"{name}: no service account token")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp RuntimeDefault")
    for c in pod["containers"] + pod.get("initContainers", []):
        where = f"{name}/{c['name']}"
        sc = c.get("securityContext", {})
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        check(non_root is True, f"{where}: runAsNonRoot")
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        check(isinstance(uid, int) and uid > 0, f"{where}: explicit non-zero runAsUser")
        check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drops ALL capabilities")
        check("add" not in sc.get("capabilities", {}), f"{where}: adds no capability")
        limits = c.get("resources", {}).get("limits", {})
        check("cpu" in limits and "memory" in limits, f"{where}: CPU and memory limits")
        check("livenessProbe" in c and "readinessProbe" in c, f"{where}: liveness and readiness probes")
        check(":latest" not in c["image"] and ":" in c["image"], f"{where}: image has a pinned tag")

api = [w for _, w in workloads if w["metadata"]["name"] == "secureinfer-api"]
check(len(api) == 1 and api[0]["spec"]["replicas"] == 2, "secureinfer-api runs 2 replicas")

# --- services: only ClusterIP --------------------------------------------------------------
for _, s in by_kind.get("Service", []):
    check(s["spec"].get("type", "ClusterIP") == "ClusterIP",
          f"service {s['metadata']['name']} is ClusterIP (no node ports, no load balancers)")

# --- network policies ----------------------------------------------------------------------
policies = [p for _, p in by_kind.get("NetworkPolicy", [])]
deny = [p for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress") and not p["spec"].get("egress")]
check(len(deny) == 1, "a default-deny policy selects every pod for ingress and egress")


def selected(policy):
    sel = policy["spec"]["podSelector"]
    return "*" if sel == {} else sel.get("matchLabels", {}).get("app")


def peers(rule, key):
    out = []
    for peer in rule.get(key, []) or [{}]:
        if "podSelector" in peer and "namespaceSelector" not in peer:
            out.append(peer["podSelector"].get("matchLabels", {}).get("app"))
        elif peer.get("namespaceSelector", {}).get("matchLabels", {}).get(
                "kubernetes.io/metadata.name") == "kube-system":
            out.append("dns")
        else:
            out.append("anywhere")
    return out


edges = set()
for p in policies:
    target = selected(p)
    for rule in p["spec"].get("ingress", []) or []:
        for src in peers(rule, "from"):
            for port in rule.get("ports", []):
                edges.add((src, target, port["port"]))
    for rule in p["spec"].get("egress", []) or []:
        for dst in peers(rule, "to"):
            for port in rule.get("ports", []):
                edges.add((target, dst, port["port"]))
expected = {
    ("anywhere", "secureinfer-api", 8000),
    ("secureinfer-api", "ollama", 11434),
    ("secureinfer-api", "redis", 6379),
    ("secureinfer-api", "postgres", 5432),
    ("*", "dns", 53),
}
check(edges == expected, f"the allow list is exactly the documented one (got {sorted(edges, key=str)})")
for app in apps - {"secureinfer-api"}:
    check(not any(src == app for src, _, _ in edges), f"{app} may not open connections (beyond DNS)")

# --- compose -------------------------------------------------------------------------------
compose = docs(ROOT / "docker-compose.yml")[0]
anchors = compose.get("x-hardened", {})
for name, svc in compose["services"].items():
    if "tools" in svc.get("profiles", []):
        continue
    merged = {**anchors, **svc}
    user = str(merged.get("user", "0")).split(":")[0]
    check(user.isdigit() and int(user) > 0, f"compose {name}: runs as a non-root user")
    check(merged.get("read_only") is True, f"compose {name}: read-only root filesystem")
    check(merged.get("cap_drop") == ["ALL"], f"compose {name}: drops ALL capabilities")
    check("no-new-privileges:true" in merged.get("security_opt", []), f"compose {name}: no-new-privileges")
    check("limits" in merged.get("deploy", {}).get("resources", {}), f"compose {name}: resource limits")
    if name != "gateway":
        check("ports" not in svc, f"compose {name}: publishes no port")
        check(svc.get("networks") == ["backend"], f"compose {name}: only on the internal network")
check(compose["networks"]["backend"].get("internal") is True, "compose backend network is internal")

print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
