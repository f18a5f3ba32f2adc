"""Loading a JobQueue document: defaults per SPEC §2, clear errors for bad input."""

from __future__ import annotations

import pytest

from jobqueue.core.errors import ConfigError
from jobqueue.core.limits import combine, parse_concurrency_limits, parse_rate_limits
from jobqueue.operator.deployment import build_deployment, worker_env
from jobqueue.operator.reconcile import queue_keys
from jobqueue.operator.spec import JobQueueSpec, load_jobqueue

MINIMAL = """
apiVersion: jobqueue.dev/v1alpha1
kind: JobQueue
metadata: {name: emails}
spec:
  worker: {image: ghcr.io/acme/jobs:1.0, app: "acme.jobs:app"}
"""


def test_a_minimal_document_gets_the_spec_defaults() -> None:
    doc = load_jobqueue(MINIMAL)
    spec = doc.spec
    assert doc.name == "emails"
    assert (spec.stream, spec.group, spec.dead_letter_stream) == ("jobs:work", "workers", None)
    assert queue_keys(spec).dead == "{jobs:work}:dead"
    assert (spec.scaling.min_replicas, spec.scaling.max_replicas) == (0, 10)
    assert spec.scaling.effective_target_backlog_s == 30.0
    assert spec.retention_policy == "Retain"
    assert spec.grace_period_s == 300 + 30


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just: [unclosed", "not valid YAML"),
        ("- a list", "must be a YAML mapping"),
        (MINIMAL.replace("kind: JobQueue", "kind: Deployment"), "kind"),
        (MINIMAL + "  scaling: {maxReplicas: 0}\n", "spec.scaling.maxReplicas"),
        (MINIMAL + "  replicas: 3\n", "spec.replicas: Extra inputs are not permitted"),
        (MINIMAL + "  redis: {url: redis://x, secretRef: {name: s}}\n", "not both"),
        (MINIMAL + "  redis: {url: redis://x, tls: true}\n", "rediss://"),
        (MINIMAL + "  redis: {url: 'redis://x:63O9/0'}\n", "redis.url: .* invalid port"),
        (
            "apiVersion: v1\nkind: Secret\n---\napiVersion: v1\nkind: ConfigMap\n",
            "none of the file's 2 documents is a JobQueue",
        ),
    ],
)
def test_bad_documents_are_a_config_error_that_names_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_jobqueue(text)


def test_a_deployment_needs_a_redis_url_or_secret() -> None:
    with pytest.raises(ConfigError, match=r"redis\.url or redis\.secretRef"):
        build_deployment("emails", "team-a", "uid-1", load_jobqueue(MINIMAL).spec, replicas=0)


def test_a_grace_period_below_the_job_timeout_is_raised_to_it() -> None:
    spec = JobQueueSpec.model_validate(
        {
            "jobTimeoutSeconds": 600,
            "worker": {"image": "x", "app": "a:b", "terminationGracePeriodSeconds": 60},
        }
    )
    assert spec.grace_period_s == 630


def test_worker_env_carries_the_queue_settings_and_keeps_user_env_from_overriding_them() -> None:
    spec = JobQueueSpec.model_validate(
        {
            "redis": {"secretRef": {"name": "redis", "key": "url"}},
            "maxDeliveries": 3,
            "worker": {
                "image": "x",
                "app": "a:b",
                "env": [
                    {"name": "JOBQUEUE_STREAM", "value": "hijack"},
                    {
                        "name": "SENTRY_DSN",
                        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                    },
                ],
            },
        }
    )
    env = {e["name"]: e for e in worker_env(spec)}
    assert env["REDIS_URL"]["valueFrom"] == {"secretKeyRef": {"name": "redis", "key": "url"}}
    assert env["JOBQUEUE_STREAM"]["value"] == "jobs:work"
    assert env["JOBQUEUE_MAX_DELIVERIES"]["value"] == "3"
    assert env["SENTRY_DSN"]["valueFrom"]["secretKeyRef"]["name"] == "s"


def test_the_deployment_runs_restricted_and_never_removes_a_pod_before_its_replacement() -> None:
    spec = load_jobqueue(MINIMAL + "  redis: {url: redis://redis:6379/0}\n").spec
    deployment = build_deployment("emails", "team-a", "uid-1", spec, replicas=2)
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "imagePullSecrets" not in pod  # none given: none written
    # A read-only root filesystem still needs a writable /tmp
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_private_images_node_placement_and_pod_annotations_reach_the_pods() -> None:
    worker = (
        "  worker: {image: x, app: 'a:b', imagePullSecrets: [regcred],"
        " nodeSelector: {pool: jobs}, podAnnotations: {team: a}}\n"
        "  redis: {url: redis://r:6379/0}\n"
    )
    spec = load_jobqueue(MINIMAL.split("  worker:")[0] + worker).spec
    template = build_deployment("emails", "team-a", "uid-1", spec, replicas=1)["spec"]["template"]
    assert template["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert template["spec"]["nodeSelector"] == {"pool": "jobs"}
    assert template["metadata"]["annotations"] == {"team": "a"}


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s0:26379,s1:26379,s2:26379/mymaster/0",
        "rediss+sentinel://:pw@s0,s1/mymaster?ssl_cert_reqs=required",
    ],
)
def test_a_sentinel_url_is_a_valid_redis_url(url: str) -> None:
    spec = load_jobqueue(MINIMAL + f"  redis: {{url: '{url}', tls: {url.startswith('rediss')}}}\n")
    assert spec.spec.redis.url == url


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://n0:7000,n1:7001,n2:7002",
        "rediss+cluster://:pw@n0,n1/0?ssl_cert_reqs=required",
    ],
)
def test_a_cluster_url_is_a_valid_redis_url(url: str) -> None:
    spec = load_jobqueue(MINIMAL + f"  redis: {{url: '{url}', tls: {url.startswith('rediss')}}}\n")
    assert spec.spec.redis.url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://:pw@n0:70x0", "port must be a number"),
        ("redis+cluster://:pw@n0:7000/3", "database 0 only"),
        ("redis+cluster://:pw@", "at least one node"),
    ],
)
def test_a_bad_cluster_url_is_a_config_error_naming_the_field(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"redis.url: .*{message}") as caught:
        load_jobqueue(MINIMAL + f"  redis: {{url: '{url}'}}\n")
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://s0:2637x/mymaster", "invalid port"),
        ("redis+sentinel://s0:26379", "names the master set"),
        ("redis+sentinel://:pw@s0/mymaster/db0", "must be a number"),
    ],
)
def test_a_bad_sentinel_url_is_a_config_error_naming_the_field(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"redis.url: .*{message}") as caught:
        load_jobqueue(MINIMAL + f"  redis: {{url: '{url}'}}\n")
    assert "pw" not in str(caught.value)


LIMITS = """  limits:
    - {type: email, rate: {jobs: 50, periodSeconds: 1}}
    - {type: report, rate: {jobs: 10, periodSeconds: 60}, concurrency: 3}
    - {type: export, concurrency: 2}
"""


def test_limits_reach_the_worker_pods_as_their_environment() -> None:
    spec = load_jobqueue(MINIMAL + "  redis: {url: redis://redis:6379/0}\n" + LIMITS).spec
    env = {e["name"]: e.get("value") for e in worker_env(spec)}
    assert env["JOBQUEUE_RATE_LIMITS"] == "email=50/1s,report=10/60s"
    assert env["JOBQUEUE_CONCURRENCY_LIMITS"] == "report=3,export=2"
    # and a worker reads them back as they were declared
    rates = parse_rate_limits(env["JOBQUEUE_RATE_LIMITS"])
    concurrency = parse_concurrency_limits(env["JOBQUEUE_CONCURRENCY_LIMITS"])
    assert combine(rates, concurrency) == tuple(sorted(spec.type_limits, key=lambda x: x.type))


def test_no_limits_no_limit_variables() -> None:
    spec = load_jobqueue(MINIMAL + "  redis: {url: redis://redis:6379/0}\n").spec
    names = {e["name"] for e in worker_env(spec)}
    assert not names & {"JOBQUEUE_RATE_LIMITS", "JOBQUEUE_CONCURRENCY_LIMITS"}


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ("  limits: [{type: email}]\n", "needs rate or concurrency"),
        ("  limits: [{type: email, concurrency: 0}]\n", "spec.limits.0.concurrency"),
        ("  limits: [{type: email, rate: {jobs: 0}}]\n", "spec.limits.0.rate.jobs"),
        ("  limits: [{type: 'a b', concurrency: 1}]\n", "spec.limits.0.type"),
        ("  limits: [{type: a, concurrency: 1}, {type: a, concurrency: 2}]\n", "each type"),
    ],
)
def test_a_bad_limit_is_refused_naming_it(limits: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_jobqueue(MINIMAL + limits)
