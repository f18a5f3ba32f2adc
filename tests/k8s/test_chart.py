"""charts/jobqueue: it lints and renders with real Helm, and what it renders is valid."""

from __future__ import annotations

import base64
import json
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from k8s.objects import (
    CHART,
    CRD_FILE,
    MANIFESTS,
    NAMESPACE,
    Obj,
    all_on_values,
    chart,
    crd_objects,
    is_operator_cluster_role,
    load_documents,
    name_of,
    render_chart,
    render_notes,
    validate_k8s,
    validate_object,
)

from jobqueue.operator.spec import parse_spec


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[Obj], kind: str, name_part: str = "") -> Obj:
    (found,) = [obj for obj in of_kind(objects, kind) if name_part in obj["metadata"]["name"]]
    return found


def validate_all(objects: list[Obj]) -> set[str]:
    """Validate every object; return the kinds skipped because no schema here covers them."""
    skipped = set()
    for obj in objects:
        if not validate_object(obj):
            skipped.add(obj["kind"])
        if obj["kind"] == "JobQueue":
            parse_spec(obj["spec"])
    return skipped


@pytest.mark.parametrize("values", [None, "all-on"], ids=["default", "all-on"])
def test_the_chart_lints_without_findings(values: str | None) -> None:
    report = helm.lint(CHART, all_on_values() if values else None, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_default_render_validates(default_objects: list[Obj]) -> None:
    assert validate_all(default_objects) == set()


def test_all_on_render_validates(all_on_objects: list[Obj]) -> None:
    # everything validates except the Prometheus Operator's monitors (logged)
    assert validate_all(all_on_objects) == {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    kinds = {obj["kind"] for obj in all_on_objects}
    assert {"JobQueue", "ConfigMap", "Role", "RoleBinding", "Secret", "Service"} <= kinds


def test_the_chart_ships_the_generated_crd_and_kopf_peering() -> None:
    peering = load_documents((MANIFESTS / "crd" / "kopf-peering.yaml").read_text())
    by_name = {crd["metadata"]["name"]: crd for crd in crd_objects()}
    expected = load_documents(CRD_FILE.read_text()) + peering
    assert by_name == {crd["metadata"]["name"]: crd for crd in expected}
    for crd in crd_objects():
        validate_k8s(crd)


BAD_VALUES: dict[str, dict[str, Any]] = {
    "unknown-top-level-key": {"replicaCount": 3},
    "unknown-nested-key": {"operator": {"replica": 2}},
    "replicas-not-a-number": {"operator": {"replicas": "two"}},
    "zero-operator-replicas": {"operator": {"replicas": 0}},
    "bad-pull-policy": {"image": {"pullPolicy": "Sometimes"}},
    "http-redis-url": {"redis": {"url": "http://redis:6379"}},
    "limits-removed": {"operator": {"resources": {"limits": None}}},
    "memory-limit-missing": {"producer": {"resources": {"limits": {"memory": None}}}},
    "short-token": {"producer": {"auth": {"tokens": ["short"]}}},
    "token-with-comma": {"producer": {"auth": {"tokens": ["abcdefghijklmnop,qrstuvwxyz"]}}},
    "bad-namespace": {"operator": {"watchNamespaces": ["Not_A_Namespace"]}},
    "port-out-of-range": {"producer": {"port": 70000}},
    "lane-priority-out-of-range": {"producer": {"lanes": [{"name": "all", "priorities": "0-10"}]}},
    "lane-name-upper-case": {"producer": {"lanes": [{"name": "High", "priorities": "1-10"}]}},
    "jobqueue-without-spec": {"jobQueues": [{"name": "demo"}]},
}


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_values_outside_the_schema_are_rejected(values: dict[str, Any]) -> None:
    # the schema check Helm runs at install time, given the user's values alone
    with pytest.raises(helm.HelmValuesError):
        chart().validate_schema(values)
    # and lint reports it as an error
    assert helm.lint(CHART, values)["errors"]


INVALID_COMBINATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "tokens-and-existing-secret": (
        {"producer": {"enabled": True, "auth": {"tokens": ["a" * 20], "existingSecret": "t"}}},
        "not both",
    ),
    "no-dashboards-in-the-chart": ({"dashboards": {"enabled": True}}, "dashboards"),
    "no-alert-rules-in-the-chart": ({"metrics": {"prometheusRule": {"enabled": True}}}, "alerts"),
    "disabling-an-unknown-alert": (
        {"metrics": {"prometheusRule": {"enabled": True, "disabledAlerts": ["JobQueueTypo"]}}},
        "no alert named JobQueueTypo",
    ),
}


@pytest.mark.parametrize(
    ("values", "reason"), INVALID_COMBINATIONS.values(), ids=INVALID_COMBINATIONS.keys()
)
def test_invalid_combinations_fail_the_render_with_a_reason(
    values: dict[str, Any], reason: str, tmp_path: Path
) -> None:
    chart_dir = CHART
    if reason in ("dashboards", "alerts"):
        # a copy of the chart without the linked files (e.g. packaged without them)
        chart_dir = tmp_path / "jobqueue"
        shutil.copytree(
            CHART, chart_dir, symlinks=True, ignore=shutil.ignore_patterns("dashboards", "alerts")
        )
    with helm.Chart.load(chart_dir) as loaded, pytest.raises(helm.HelmRenderError, match=reason):
        loaded.render(values, name="jq", namespace=NAMESPACE)


def test_a_redis_url_from_an_existing_secret_creates_no_secret() -> None:
    values = {"redis": {"existingSecret": "my-redis", "existingSecretKey": "uri"}}
    objects = render_chart(
        {**values, "producer": {"enabled": True, "auth": {"existingSecret": "t"}}}
    )
    assert not of_kind(objects, "Secret")
    pods = [one(objects, "Pod")["spec"], one(objects, "Deployment", "producer")["spec"]["template"]]
    for pod in pods:
        env = pod.get("spec", pod)["containers"][0]["env"]
        redis = next(var for var in env if var["name"] == "REDIS_URL")
        assert redis["valueFrom"]["secretKeyRef"] == {"name": "my-redis", "key": "uri"}


def test_the_redis_url_never_appears_in_a_pod_spec(all_on_objects: list[Obj]) -> None:
    url = all_on_values()["redis"]["url"]
    for obj in all_on_objects:
        if obj["kind"] != "Secret":
            assert url not in json.dumps(obj), name_of(obj)


def _tokens(objects: list[Obj]) -> str:
    secret = one(objects, "Secret", "producer-auth")
    return base64.b64decode(secret["data"]["tokens"]).decode()


def test_the_producer_token_is_generated_when_none_is_given() -> None:
    # given the producer on and no token; when the chart is installed twice
    first = _tokens(render_chart({"producer": {"enabled": True}}))
    second = _tokens(render_chart({"producer": {"enabled": True}}))
    # then each install gets a long random token of its own
    assert len(first) == 48
    assert first.isalnum()
    assert first != second


def test_given_producer_tokens_are_used_as_they_are(all_on_objects: list[Obj]) -> None:
    assert _tokens(all_on_objects).split(",") == all_on_values()["producer"]["auth"]["tokens"]
    pod = one(all_on_objects, "Deployment", "producer")["spec"]["template"]["spec"]
    env = {var["name"]: var.get("value") for var in pod["containers"][0]["env"]}
    assert env["JOBQUEUE_AUTH_TOKENS_FILE"] == "/var/run/secrets/jobqueue/auth/tokens"
    assert "JOBQUEUE_AUTH_TOKENS" not in env


def test_an_existing_producer_secret_is_mounted_not_created() -> None:
    objects = render_chart({"producer": {"enabled": True, "auth": {"existingSecret": "tokens"}}})
    assert not [obj for obj in of_kind(objects, "Secret") if "producer" in name_of(obj)]
    pod = one(objects, "Deployment", "producer")["spec"]["template"]["spec"]
    auth = next(volume for volume in pod["volumes"] if volume["name"] == "auth")
    assert auth["secret"]["secretName"] == "tokens"


def test_the_producer_gets_the_queue_priority_lanes_as_text() -> None:
    lanes = [
        {"name": "high", "priorities": "8-10"},
        {"name": "normal", "priorities": "4-7"},
        {"name": "low", "priorities": "1-3"},
    ]
    with_lanes = render_chart({"producer": {"enabled": True, "lanes": lanes}})
    without = render_chart({"producer": {"enabled": True}})

    def producer_env(objects: list[Obj]) -> dict[str, Any]:
        pod = one(objects, "Deployment", "producer")["spec"]["template"]["spec"]
        return {var["name"]: var.get("value") for var in pod["containers"][0]["env"]}

    assert producer_env(with_lanes)["JOBQUEUE_LANES"] == "high:8-10,normal:4-7,low:1-3"
    assert "JOBQUEUE_LANES" not in producer_env(without)


def test_watching_namespaces_grants_roles_there_and_nothing_namespaced_cluster_wide(
    all_on_objects: list[Obj],
) -> None:
    watched = all_on_values()["operator"]["watchNamespaces"]
    roles = of_kind(all_on_objects, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == sorted(watched)
    bindings = of_kind(all_on_objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(watched)
    (cluster_role,) = [o for o in all_on_objects if is_operator_cluster_role(o)]
    assert [rule["resources"] for rule in cluster_role["rules"]] == [["customresourcedefinitions"]]
    peerings = of_kind(all_on_objects, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == sorted(watched)
    assert not of_kind(all_on_objects, "ClusterKopfPeering")
    pod = one(all_on_objects, "StatefulSet", "operator")["spec"]["template"]["spec"]
    env = {var["name"]: var.get("value") for var in pod["containers"][0]["env"]}
    assert env["JOBQUEUE_OPERATOR_NAMESPACES"] == ",".join(watched)


def test_cluster_wide_by_default_with_one_cluster_peering(default_objects: list[Obj]) -> None:
    (peering,) = of_kind(default_objects, "ClusterKopfPeering")
    pod = one(default_objects, "StatefulSet", "operator")["spec"]["template"]["spec"]
    env = {var["name"]: var.get("value") for var in pod["containers"][0]["env"]}
    assert env["JOBQUEUE_OPERATOR_NAMESPACES"] == ""
    assert env["JOBQUEUE_OPERATOR_PEERING"] == peering["metadata"]["name"]


def test_dashboards_configmap_carries_every_dashboard_for_the_grafana_sidecar(
    all_on_objects: list[Obj],
) -> None:
    configmap = one(all_on_objects, "ConfigMap", "dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    shipped = {path.name: path.read_text() for path in (MANIFESTS / "dashboards").glob("*.json")}
    assert configmap["data"] == shipped


def test_the_helm_test_hook_runs_the_enqueue_and_wait_script(default_objects: list[Obj]) -> None:
    pod = one(default_objects, "Pod", "test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["python", "-c"]
    assert container["args"] == [(CHART / "files" / "helm_test.py").read_text()]
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert json.loads(env["TEST_PAYLOAD"]) == chart().values["tests"]["payload"]


def test_jobqueues_from_values_render_in_the_release_namespace(all_on_objects: list[Obj]) -> None:
    (queue,) = of_kind(all_on_objects, "JobQueue")
    assert queue["metadata"]["namespace"] == NAMESPACE
    assert queue["spec"] == all_on_values()["jobQueues"][0]["spec"]


def test_live_update_mode_keeps_the_root_filesystem_read_only(all_on_objects: list[Obj]) -> None:
    pod = one(all_on_objects, "StatefulSet", "operator")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["live-sources"].endswith("site-packages/jobqueue")


def test_notes_tell_how_to_reach_the_producer() -> None:
    notes = render_notes({"producer": {"enabled": True}})
    assert "port-forward svc/jq-jobqueue-producer" in notes
    assert "jq-jobqueue-producer-auth" in notes
    assert "producer" not in render_notes().split("helm test")[0].lower()


def _commented(lines: list[str], index: int) -> bool:
    """Whether line ``index`` or one of the blocks holding it has a comment right above."""
    indent = len(lines[index]) - len(lines[index].lstrip(" -"))
    while index > 0:
        if lines[index - 1].strip().startswith("#"):
            return True
        parents = [
            i
            for i in range(index - 1, -1, -1)
            if lines[i].strip()
            and not lines[i].strip().startswith("#")
            and len(lines[i]) - len(lines[i].lstrip(" -")) < indent
        ]
        if not parents:
            return False
        index = parents[0]
        indent = len(lines[index]) - len(lines[index].lstrip(" -"))
    return False


def test_values_yaml_documents_every_key() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            assert _commented(lines, index), f"values.yaml:{index + 1} {stripped!r} has no comment"


def test_default_values_match_the_schema_defaults_shape() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    chart().validate_schema(defaults)
    chart().validate_schema(all_on_values())


def _object_schemas(schema: Obj, path: str = "values") -> list[tuple[str, Obj]]:
    found = []
    if schema.get("properties"):
        found.append((path, schema))
        for key, child in schema["properties"].items():
            found.extend(_object_schemas(child, f"{path}.{key}"))
    if isinstance(schema.get("items"), dict):
        found.extend(_object_schemas(schema["items"], f"{path}[]"))
    return found


def test_the_values_schema_closes_every_section_it_describes() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    sections = _object_schemas(schema)
    assert len(sections) > 15
    for path, section in sections:
        if path.endswith("extraEnv[]"):
            continue  # a Kubernetes EnvVar: value or valueFrom, checked by the API server
        assert section.get("additionalProperties") is False, path
    # and describes every key values.yaml has
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    for key in defaults:
        assert key in schema["properties"], key


def test_the_producer_rolls_when_its_tokens_change() -> None:
    def annotations(tokens: list[str]) -> dict[str, str]:
        values = {"producer": {"enabled": True, "auth": {"tokens": tokens}}}
        pod = one(render_chart(values), "Deployment", "producer")["spec"]["template"]
        found: dict[str, str] = pod["metadata"]["annotations"]
        return found

    first, second = annotations(["a" * 20]), annotations(["b" * 20])
    assert first["checksum/auth"] != second["checksum/auth"]
    assert first["checksum/redis"] == second["checksum/redis"]


NOTES_VALUES: dict[str, dict[str, Any]] = {
    "default": {},
    "producer": {"producer": {"enabled": True}},
    "existing-secrets": {
        "redis": {"existingSecret": "my-redis", "existingSecretKey": "uri"},
        "producer": {"enabled": True, "auth": {"existingSecret": "my-tokens"}},
    },
    "watching-the-release-namespace": {"operator": {"watchNamespaces": [NAMESPACE, "team-a"]}},
    "watching-other-namespaces": {"operator": {"watchNamespaces": ["team-a"]}},
    "all-on": all_on_values(),
}
REFERENCE = re.compile(
    r"(?:get secret |svc/|statefulset/|secretRef: \{name: )([a-z0-9][-a-z0-9.]*)"
)


@pytest.mark.parametrize("values", NOTES_VALUES.values(), ids=NOTES_VALUES.keys())
def test_notes_reference_only_objects_the_chart_or_the_notes_create(values: dict[str, Any]) -> None:
    notes = render_notes(values)
    objects = render_chart(values)
    created = {obj["metadata"]["name"] for obj in objects}
    created |= set(re.findall(r"create secret generic (\S+)", notes))
    created |= {values.get(k, {}).get(s) for k, s in (("redis", "existingSecret"),)} - {None}
    created |= {(values.get("producer", {}).get("auth") or {}).get("existingSecret")} - {None}
    referenced = set(REFERENCE.findall(notes))
    assert referenced, notes
    assert referenced <= created, notes
    # and the JobQueue it shows is valid and lands where the operator watches
    manifest = notes.split("<<'EOF'\n")[1].split("EOF")[0]
    (queue,) = load_documents(textwrap.dedent(manifest))
    parse_spec(queue["spec"])
    applied = re.search(r"kubectl -n (\S+) apply -f -", notes)
    assert applied is not None
    watched = (values.get("operator") or {}).get("watchNamespaces") or [NAMESPACE]
    assert applied[1] in watched


def test_notes_claim_worker_network_policies_only_where_the_chart_creates_them() -> None:
    for values in NOTES_VALUES.values():
        notes = render_notes(values)
        workers = [
            o["metadata"]["namespace"]
            for o in render_chart(values)
            if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-worker")
        ]
        claim = re.search(r"Worker pods are limited to .* DNS in\s+([^.(;]+)", notes)
        assert claim is not None, notes
        assert sorted(n.strip() for n in claim[1].replace(" only", "").split(",")) == sorted(
            workers
        )


def test_managed_crds_are_templates_helm_upgrades_and_keeps_on_uninstall() -> None:
    # given crds.managed, on an upgrade (Helm never upgrades crds/, it applies templates)
    rendered = chart().render(
        {"crds": {"managed": True}}, name="jq", namespace=NAMESPACE, is_upgrade=True
    )
    templated = load_documents(rendered["jobqueue/templates/crds.yaml"])
    # then the templates are the crds/ files, kept on uninstall, labelled as the release's
    shipped = {crd["metadata"]["name"]: crd for crd in crd_objects()}
    assert {crd["metadata"]["name"] for crd in templated} == set(shipped)
    for crd in templated:
        validate_k8s(crd)
        meta = crd["metadata"]
        original = json.loads(json.dumps(shipped[meta["name"]]))
        assert meta.pop("annotations") == {"helm.sh/resource-policy": "keep"}
        labels = meta.pop("labels")
        assert labels["app.kubernetes.io/instance"] == "jq"
        assert original["metadata"].pop("labels", {}).items() <= labels.items()
        assert crd == original


def test_crds_stay_in_crds_by_default(default_objects: list[Obj]) -> None:
    assert not of_kind(default_objects, "CustomResourceDefinition")
