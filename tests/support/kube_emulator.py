"""A Kubernetes API over real HTTP for operator tests: kmock's KubernetesEmulator, made fit
for Kopf the way a trial run found necessary.

- every resource the operator touches is declared with its verbs and subresources
  (discovery answers from these declarations);
- objects the test creates get ``resourceVersion``, ``uid``, ``generation`` and
  ``creationTimestamp`` (the emulator stamps nothing), and a spec change bumps
  ``generation`` as the API server would;
- writes go over HTTP, so Kopf's watch streams see them;
- Kopf must run cluster-wide (``-A``): the emulator fails on ``GET /api/v1/namespaces``.

`KubeEmulator.calls` lists every request as ``(verb, resource, subresource)``, so a test
can derive the RBAC the operator needs from what it actually did.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import jsonpatch
import kmock

T = TypeVar("T")
TEST_CLIENT_AGENT = "kube-emulator-test-client"
"""User-Agent of the helpers' own requests, which `KubeEmulator.calls` leaves out."""
NAMESPACE = "team-a"
"""Namespace of the objects tests create."""
JOBQUEUES = "jobqueue.dev/v1alpha1/jobqueues"
DEPLOYMENTS = "apps/v1/deployments"
PODS = "v1/pods"
SECRETS = "v1/secrets"
EVENTS = "v1/events"
NAMESPACES = "v1/namespaces"
PEERINGS = "kopf.dev/v1/clusterkopfpeerings"
PDBS = "policy/v1/poddisruptionbudgets"
NETWORK_POLICIES = "networking.k8s.io/v1/networkpolicies"

RESOURCES: dict[str, kmock.ResourceInfo] = {
    JOBQUEUES: kmock.ResourceInfo(
        kind="JobQueue",
        singular="jobqueue",
        namespaced=True,
        shortnames={"jq"},
        verbs={"get", "list", "watch", "patch", "update", "create", "delete"},
        subresources={"status"},
    ),
    DEPLOYMENTS: kmock.ResourceInfo(
        kind="Deployment",
        singular="deployment",
        namespaced=True,
        verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
        subresources={"status", "scale"},
    ),
    PDBS: kmock.ResourceInfo(
        kind="PodDisruptionBudget",
        singular="poddisruptionbudget",
        namespaced=True,
        verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
    ),
    NETWORK_POLICIES: kmock.ResourceInfo(
        kind="NetworkPolicy",
        singular="networkpolicy",
        namespaced=True,
        verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
    ),
    PODS: kmock.ResourceInfo(
        kind="Pod", singular="pod", namespaced=True, verbs={"get", "list", "watch", "create"}
    ),
    SECRETS: kmock.ResourceInfo(
        kind="Secret", singular="secret", namespaced=True, verbs={"get", "list", "create"}
    ),
    EVENTS: kmock.ResourceInfo(
        kind="Event", singular="event", namespaced=True, verbs={"create", "list", "get"}
    ),
    PEERINGS: kmock.ResourceInfo(
        kind="ClusterKopfPeering",
        singular="clusterkopfpeering",
        namespaced=False,
        verbs={"get", "list", "watch", "patch", "create"},
    ),
    # Kopf waits until discovery shows namespaces, even cluster-wide where it never lists them.
    NAMESPACES: kmock.ResourceInfo(
        kind="Namespace", singular="namespace", namespaced=False, verbs={"list", "watch", "get"}
    ),
}

_ACTION_VERBS = {
    "LIST": "list",
    "WATCH": "watch",
    "FETCH": "get",
    "CREATE": "create",
    "UPDATE": "patch",
    "DELETE": "delete",
}


def _path(resource: str, namespace: str | None, name: str = "", subresource: str = "") -> str:
    ref = kmock.resource(resource)
    base = f"/api/{ref.version}" if ref.group == "" else f"/apis/{ref.group}/{ref.version}"
    if namespace is not None:
        base += f"/namespaces/{namespace}"
    tail = "/".join(part for part in (name, subresource) if part)
    return f"{base}/{ref.plural}" + (f"/{tail}" if tail else "")


def _is_apply(request: Any) -> bool:
    return "apply-patch" in str(request.headers.get("Content-Type", ""))


class NamingEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """The emulator, plus what the API server does that Kopf relies on: a fresh
    ``resourceVersion`` on every write (else Kopf takes a stale watch event for the answer
    to its own patch and handles a creation twice), names for ``generateName`` (Events),
    and 422 for a failed JSON patch test.
    """

    _versions = itertools.count(1)

    async def _handle(self, request: Any) -> Any:
        data = request.data
        writes = (kmock.action.CREATE, kmock.action.UPDATE)
        if request.action == kmock.action.UPDATE and _is_apply(request):
            self._upsert(request)
        if request.action in writes and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            meta["resourceVersion"] = str(next(self._versions))
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:8]
        elif request.action == kmock.action.UPDATE and isinstance(data, list):  # JSON patch
            version = str(next(self._versions))
            data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})
        return await super()._handle(request)

    def _upsert(self, request: Any) -> None:
        """Server-side apply creates a missing object, as the API server does."""
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            meta = {"name": request.name, "namespace": request.namespace}
            self.objects[key] = {"metadata": meta}

    async def _render_error(self, exc: Exception) -> Any:
        # A JSON patch whose resourceVersion test fails is a 422 on a real API server; Kopf
        # then re-reads and patches again. The emulator would answer 500, which Kopf
        # retries unchanged forever.
        if isinstance(exc, jsonpatch.JsonPatchTestFailed):
            exc = kmock.KubernetesError(status=422, reason="Invalid", message=str(exc))
        return await super()._render_error(exc)


class KubeEmulator:
    """The emulator, its HTTP URL, and helpers to write objects as a user would."""

    def __init__(self, emulator: NamingEmulator, url: str) -> None:
        self.emulator = emulator
        self.url = url
        self._versions = itertools.count(1000)
        self._session: aiohttp.ClientSession | None = None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            agent = {"User-Agent": TEST_CLIENT_AGENT}
            # No keep-alive: an idle connection's server task would hold up Kopf's exit
            # (Kopf waits for every task started while it ran; the emulator shares the loop).
            connector = aiohttp.TCPConnector(force_close=True)
            self._session = aiohttp.ClientSession(
                base_url=self.url, headers=agent, connector=connector
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _send(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        session = await self._http()
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        async with session.request(method, path, json=body, headers=headers) as response:
            payload: dict[str, Any] = await response.json(content_type=None)
            if response.status >= 400:
                raise AssertionError(f"{method} {path}: {response.status} {payload}")
            return payload

    async def create(
        self, resource: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Create an object (cluster-scoped when ``namespace`` is None) stamped like the API
        server would."""
        stamped = {**body}
        stamped["metadata"] = {
            **body.get("metadata", {}),
            **({} if namespace is None else {"namespace": namespace}),
            "uid": str(uuid.uuid4()),
            "resourceVersion": str(next(self._versions)),
            "generation": 1,
            "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return await self._send("POST", _path(resource, namespace), stamped)

    async def patch_spec(
        self, resource: str, namespace: str, name: str, spec: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch ``spec``, bumping generation and resourceVersion."""
        current = self.get(resource, namespace, name)
        assert current is not None, f"{name} does not exist"
        generation = int(current["metadata"].get("generation", 1)) + 1
        body = {
            "spec": spec,
            "metadata": {"generation": generation, "resourceVersion": str(next(self._versions))},
        }
        return await self._send("PATCH", _path(resource, namespace, name), body)

    async def patch_status(
        self, resource: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch ``status``, as a controller of that resource would (e.g. the
        Deployment controller counting ready pods)."""
        body = {"status": status, "metadata": {"resourceVersion": str(next(self._versions))}}
        return await self._send("PATCH", _path(resource, namespace, name), body)

    async def delete(self, resource: str, namespace: str, name: str) -> None:
        await self._send("DELETE", _path(resource, namespace, name))

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as stored now, or None."""
        key = (kmock.resource(resource), namespace, name)
        if key not in self.emulator.objects:
            return None
        obj = self.emulator.objects[key]
        if obj.deleted:
            return None
        return dict(obj.raw)

    def list(self, resource: str) -> list[dict[str, Any]]:
        ref = kmock.resource(resource)
        return [
            dict(obj.raw)
            for (res, _, _), obj in self.emulator.objects.items()
            if res == ref and not obj.deleted
        ]

    def events(self, involved: str | None = None) -> list[dict[str, Any]]:
        """Events posted so far, optionally only those about the object named ``involved``."""
        found = self.list(EVENTS)
        if involved is not None:
            found = [e for e in found if e.get("involvedObject", {}).get("name") == involved]
        return found

    @property
    def requests(self) -> list[kmock.Request]:
        """Every request served so far, oldest first."""
        return [r for r in self.emulator if isinstance(r, kmock.Request)]

    @property
    def calls(self) -> set[tuple[str, str, str]]:
        """``(verb, group/version/plural, subresource)`` of every request the code under
        test made so far (the helpers' own requests left out)."""
        seen = set()
        for request in self.requests:
            if request.resource is None or request.action is None:
                continue
            if request.resource.plural is None:
                continue  # discovery (/api/v1, /apis/group/version): needs no RBAC
            if request.headers.get("User-Agent") == TEST_CLIENT_AGENT:
                continue
            ref = request.resource
            resource = f"{ref.group}/{ref.version}/{ref.plural}".lstrip("/")
            verb = _ACTION_VERBS[request.action.name]
            seen.add((verb, resource, request.subresource or ""))
        return seen


async def start_emulator() -> AsyncIterator[KubeEmulator]:
    """Run an emulator on a free localhost port for as long as the iterator is open."""
    async with NamingEmulator() as emulator, kmock.Server(emulator) as server:
        for key, info in RESOURCES.items():
            emulator.resources[key] = info
        wrapper = KubeEmulator(emulator, str(server.url).rstrip("/"))
        try:
            yield wrapper
        finally:
            await wrapper.close()


async def eventually(
    check: Callable[[], Awaitable[T | None] | T | None], timeout_s: float = 15.0, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or check}: {last!r}")


def jobqueue(name: str, redis_url: str, **spec: Any) -> dict[str, Any]:
    """A JobQueue object with a fast-polling scaling section."""
    scaling = {
        "minReplicas": 0,
        "maxReplicas": 5,
        "pollIntervalSeconds": 0.2,
        "scaleDownStabilizationSeconds": 1.0,
        "idleSecondsBeforeZero": 1.0,
        "lagPerReplica": 10,
        **spec.pop("scaling", {}),
    }
    return {
        "apiVersion": "jobqueue.dev/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name},
        "spec": {
            "redis": {"url": redis_url},
            "stream": f"{name}:work",
            "deadLetterStream": f"{name}:dead",
            "worker": {"image": "ghcr.io/acme/jobs:1.0", "app": "acme.jobs:app"},
            "scaling": scaling,
            **spec,
        },
    }


async def apply(kube: KubeEmulator, body: dict[str, Any]) -> dict[str, Any]:
    """Create a JobQueue in `NAMESPACE`, as ``kubectl apply`` would."""
    return await kube.create(JOBQUEUES, NAMESPACE, body)
