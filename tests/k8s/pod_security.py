"""Pod Security Standards, "restricted" profile, plus jobqueue's own rules, as pure checks.

`restricted_violations` follows https://kubernetes.io/docs/concepts/security/pod-security-standards/
(baseline controls included, as restricted includes baseline); `house_violations` adds
what the issue asks of every jobqueue pod. Both return human-readable findings; an
empty list means the pod spec passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Obj = dict[str, Any]

ALLOWED_VOLUME_KEYS = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
    "image",
}
ALLOWED_ADDED_CAPABILITIES = {"NET_BIND_SERVICE"}
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
ALLOWED_SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t"}


def containers(pod: Obj) -> Iterator[Obj]:
    """Every container of the pod: init, regular and ephemeral."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod.get(key) or []


def _effective(pod: Obj, container: Obj, field: str) -> Any:
    """A securityContext field of the container, or the pod's when the container has none."""
    own = (container.get("securityContext") or {}).get(field)
    return own if own is not None else (pod.get("securityContext") or {}).get(field)


def _host_namespaces(pod: Obj) -> list[str]:
    return [f"spec.{key} is true" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]


def _volumes(pod: Obj) -> list[str]:
    found = []
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUME_KEYS:
            found.append(f"volume {volume.get('name')} has type {sorted(kinds)}")
    return found


def _sysctls_and_selinux(pod: Obj) -> list[str]:
    context = pod.get("securityContext") or {}
    found = [
        f"sysctl {sysctl.get('name')} is not in the safe set"
        for sysctl in context.get("sysctls") or []
        if sysctl.get("name") not in SAFE_SYSCTLS
    ]
    selinux = context.get("seLinuxOptions") or {}
    if (
        selinux.get("type") not in ALLOWED_SELINUX_TYPES
        or selinux.get("user")
        or selinux.get("role")
    ):
        found.append("pod seLinuxOptions set a custom type, user or role")
    return found


def _container_violations(pod: Obj, container: Obj) -> list[str]:
    name = container.get("name")
    context = container.get("securityContext") or {}
    found = []
    if context.get("privileged"):
        found.append(f"container {name} is privileged")
    if context.get("allowPrivilegeEscalation") is not False:
        found.append(f"container {name} does not set allowPrivilegeEscalation: false")
    if _effective(pod, container, "runAsNonRoot") is not True:
        found.append(f"container {name} does not run as non-root (runAsNonRoot)")
    if _effective(pod, container, "runAsUser") == 0:
        found.append(f"container {name} runs as uid 0")
    seccomp = _effective(pod, container, "seccompProfile") or {}
    if seccomp.get("type") not in ALLOWED_SECCOMP:
        found.append(f"container {name} has seccomp {seccomp.get('type')!r}")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append(f"container {name} does not drop ALL capabilities")
    added = set(capabilities.get("add") or []) - ALLOWED_ADDED_CAPABILITIES
    if added:
        found.append(f"container {name} adds capabilities {sorted(added)}")
    if context.get("procMount") not in (None, "Default"):
        found.append(f"container {name} uses procMount {context['procMount']}")
    if any(port.get("hostPort") for port in container.get("ports") or []):
        found.append(f"container {name} uses a hostPort")
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        found.append(f"container {name} is a Windows host process")
    return found


def restricted_violations(pod: Obj) -> list[str]:
    """Why ``pod`` (a PodSpec) breaks the "restricted" profile; empty when it does not."""
    found = _host_namespaces(pod) + _volumes(pod) + _sysctls_and_selinux(pod)
    for container in containers(pod):
        found.extend(_container_violations(pod, container))
    return found


def house_violations(pod: Obj, *, mounts_api_token: bool) -> list[str]:
    """jobqueue's own rules: read-only root, requests and limits, probes, token mounting.

    ``mounts_api_token``: whether this pod is allowed to (the operator) — every other pod
    must set ``automountServiceAccountToken: false``.
    """
    found = []
    if not mounts_api_token and pod.get("automountServiceAccountToken") is not False:
        found.append("pod does not set automountServiceAccountToken: false")
    for container in containers(pod):
        name = container.get("name")
        if (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
            found.append(f"container {name} has a writable root filesystem")
        resources = container.get("resources") or {}
        for part in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(part) or {})
            if missing:
                found.append(f"container {name} has no {part} for {sorted(missing)}")
    for container in pod.get("containers") or []:
        if not (container.get("livenessProbe") and container.get("readinessProbe")):
            found.append(f"container {container.get('name')} lacks a liveness or readiness probe")
    return found
