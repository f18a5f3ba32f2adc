"""The few Kubernetes API calls the operator makes beyond Kopf's own, over aiohttp.

Every call the operator makes is a method here, so the least-privilege RBAC is this list
plus Kopf's own: ``jobqueues`` list/watch/patch, ``events`` create, the peering objects
(``clusterkopfpeerings``, or ``kopfpeerings`` per namespace) get/list/watch/patch.
Watching a set of namespaces, the operator turns Kopf's scanning off (the names are
exact), so Kopf never lists namespaces, which a Role could not grant. Without list/watch on
``customresourcedefinitions`` Kopf only warns (it then discovers resources at start-up).

=======================  ==================================================  ======================
method                   request                                             RBAC verb
=======================  ==================================================  ======================
`get_deployment`         GET apps/v1 deployments/{name}                      deployments get
`apply_deployment`       PATCH (server-side apply) deployments/{name}        deployments patch
`scale_deployment`       PATCH (merge) deployments/{name}                    deployments patch
`delete_deployment`      DELETE apps/v1 deployments/{name}                   deployments delete
`get_pdb`                GET policy/v1 poddisruptionbudgets                  pdbs get
`create_pdb`             POST policy/v1 poddisruptionbudgets                 pdbs create
`patch_pdb`              PATCH (merge) pdbs/{name}                           pdbs patch
`delete_pdb`             DELETE policy/v1 pdbs/{name}                        pdbs delete
`apply_network_policy`   PATCH (server-side apply) networkpolicies           networkpolicies patch
`delete_network_policy`  DELETE networking.k8s.io/v1 networkpolicies/{name}  networkpolicies delete
`pod_names`              GET v1 pods?labelSelector=                          pods list
`secret_value`           GET v1 secrets/{name}                               secrets get
`patch_status`           PATCH jobqueues/{name}/status                       jobqueues/status patch
=======================  ==================================================  ======================

`apply_deployment` and `apply_network_policy` also create a missing object, which the API
server authorizes as ``create`` too: so the operator's apply owns every field of it from
the start.

Credentials are Kopf's: the login handler hands the same `kopf.ConnectionInfo` to
`KubeApi`, so there is one notion of "the cluster" in the process.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf

from jobqueue.operator.spec import GROUP, PLURAL, VERSION

FIELD_MANAGER = "jobqueue-operator"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
REQUEST_TIMEOUT_S = 30.0


class KubeApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason


class KubeApi:
    """A tiny asynchronous client of the Kubernetes API (see the module table)."""

    def __init__(self, info: kopf.ConnectionInfo) -> None:
        self._info = info
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def close(self) -> None:
        """Close the connections; later calls fail with `KubeApiError` (the operator stops)."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _make_session(self) -> aiohttp.ClientSession:
        info = self._info
        headers = {
            "Accept": "application/json",
            "User-Agent": FIELD_MANAGER,
            **info.as_http_headers(),
        }
        tls = info.as_ssl_context() if info.server.startswith("https") else False
        connector = aiohttp.TCPConnector(ssl=tls, limit=8)
        return aiohttp.ClientSession(
            base_url=info.server.rstrip("/") + "/",
            headers=headers,
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """One API call; None for 404, `KubeApiError` for any other error status."""
        if self._closed:
            raise KubeApiError(0, "Closed", "the operator is stopping")
        if self._session is None:
            self._session = self._make_session()
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self._session.request(
            method, path.lstrip("/"), json=body, headers=headers, params=params
        ) as response:
            if response.status == 404:
                return None
            payload = await response.json(content_type=None)
            if response.status >= 400:
                payload = payload if isinstance(payload, dict) else {}
                raise KubeApiError(
                    response.status, str(payload.get("reason", "")), str(payload.get("message", ""))
                )
            return payload if isinstance(payload, dict) else {}

    @staticmethod
    def _deployments(namespace: str, name: str = "") -> str:
        suffix = f"/{name}" if name else ""
        return f"apis/apps/v1/namespaces/{namespace}/deployments{suffix}"

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._request("GET", self._deployments(namespace, name))

    async def apply_deployment(self, namespace: str, body: Mapping[str, Any]) -> None:
        """Server-side apply, creating the Deployment when missing: fields the operator
        stopped setting are removed."""
        name = body["metadata"]["name"]
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        applied = await self._request(
            "PATCH",
            self._deployments(namespace, name),
            body=body,
            content_type=APPLY_PATCH,
            params=params,
        )
        if applied is None:
            raise KubeApiError(404, "NotFound", f"namespace {namespace} not found")

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> bool:
        """Set ``spec.replicas``; False when the Deployment does not exist."""
        patch = {"spec": {"replicas": replicas}}
        path = self._deployments(namespace, name)
        return await self._request("PATCH", path, body=patch, content_type=MERGE_PATCH) is not None

    async def delete_deployment(self, namespace: str, name: str) -> bool:
        """Delete it and let its pods go (foreground); False when it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"}
        return (
            await self._request("DELETE", self._deployments(namespace, name), body=body) is not None
        )

    @staticmethod
    def _pdbs(namespace: str, name: str = "") -> str:
        suffix = f"/{name}" if name else ""
        return f"apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets{suffix}"

    async def get_pdb(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._request("GET", self._pdbs(namespace, name))

    async def create_pdb(self, namespace: str, body: Mapping[str, Any]) -> None:
        if await self._request("POST", self._pdbs(namespace), body=body) is None:
            raise KubeApiError(404, "NotFound", f"namespace {namespace} not found")

    async def patch_pdb(self, namespace: str, body: Mapping[str, Any]) -> None:
        """Merge-patch an existing PodDisruptionBudget (a null removes a field)."""
        path = self._pdbs(namespace, body["metadata"]["name"])
        await self._request("PATCH", path, body=body, content_type=MERGE_PATCH)

    async def delete_pdb(self, namespace: str, name: str) -> bool:
        """Delete it; False when it was already gone."""
        return await self._request("DELETE", self._pdbs(namespace, name)) is not None

    @staticmethod
    def _network_policies(namespace: str, name: str = "") -> str:
        suffix = f"/{name}" if name else ""
        return f"apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies{suffix}"

    async def apply_network_policy(self, namespace: str, body: Mapping[str, Any]) -> None:
        """Server-side apply, as for the Deployment: rules the spec dropped go."""
        path = self._network_policies(namespace, body["metadata"]["name"])
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        await self._request("PATCH", path, body=body, content_type=APPLY_PATCH, params=params)

    async def delete_network_policy(self, namespace: str, name: str) -> bool:
        """False when there was none."""
        return await self._request("DELETE", self._network_policies(namespace, name)) is not None

    async def pod_names(self, namespace: str, selector: Mapping[str, str]) -> set[str]:
        """Names of the pods (any phase) matching ``selector``."""
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        listing = await self._request(
            "GET", f"api/v1/namespaces/{namespace}/pods", params={"labelSelector": label_selector}
        )
        items = (listing or {}).get("items", [])
        return {str(item["metadata"]["name"]) for item in items}

    async def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a Secret, decoded; None when the Secret or the key is missing."""
        secret = await self._request("GET", f"api/v1/namespaces/{namespace}/secrets/{name}")
        encoded = ((secret or {}).get("data") or {}).get(key)
        return None if encoded is None else base64.b64decode(encoded).decode()

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        """Merge ``status`` into the JobQueue's status; False when the JobQueue is gone."""
        path = f"apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        body = {"status": dict(status)}
        return await self._request("PATCH", path, body=body, content_type=MERGE_PATCH) is not None
