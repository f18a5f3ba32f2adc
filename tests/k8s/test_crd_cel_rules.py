"""Every CEL rule of the JobQueue CRD, evaluated: what it accepts and what it refuses.

The CRD's ``x-kubernetes-validations`` run only in a real API server, which no test here
has; `k8s.crd_cel` evaluates them with a real CEL implementation under Kubernetes'
conventions (``self`` at the rule's place, defaults applied first, ``oldSelf`` on
updates). Below, per rule, specs it accepts and specs it refuses, each named for the
behaviour it shows. Every example is also checked against the CRD's OpenAPI schema (so a
refusal is the rule's, not the schema's) and against the spec model the operator
validates with (`JobQueueSpec`), so a rule that drifts from the operator fails here.

A rule added to the CRD without examples fails `test_every_crd_rule_has_examples`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from k8s.crd_cel import ROOT, Rule, evaluate, find_rules, jobqueue_schema, refusals
from k8s.objects import validate_jobqueue
from pydantic import ValidationError

from jobqueue.operator.spec import PARTITIONS_FIXED, JobQueueSpec

Obj = dict[str, Any]


def queue(**fields: Any) -> Obj:
    """A JobQueue spec as manifests/samples/jobqueue.yaml writes one, with ``fields`` set."""
    spec: Obj = {
        "redis": {"secretRef": {"name": "jobqueue-redis", "key": "url"}},
        "stream": "jobs:work",
        "worker": {"image": "ghcr.io/acme/jobs:1.4", "app": "acme.jobs:app"},
    }
    return {**spec, **fields}


def worker(**fields: Any) -> Obj:
    """``spec.worker`` of `queue` with ``fields`` set (``image=None`` drops the image)."""
    given = {"image": "ghcr.io/acme/jobs:1.4", "app": "acme.jobs:app", **fields}
    return {key: value for key, value in given.items() if value is not None}


LANES = [
    {"name": "high", "priorities": "8-10"},
    {"name": "normal", "priorities": "4-7"},
    {"name": "low", "priorities": "1-3"},
]
WEIGHTED_LANES = [{**lane, "weight": weight} for lane, weight in zip(LANES, (6, 3, 1), strict=True)]
SMTP_PASSWORD = {"secretKeyRef": {"name": "smtp", "key": "password"}}
SMTP_HOST = {"configMapKeyRef": {"name": "smtp", "key": "host"}}
NAMESPACE = {"fieldRef": {"fieldPath": "metadata.namespace"}}


@dataclass(frozen=True)
class Example:
    """A JobQueue created with ``spec``, or updated to it from ``old``."""

    spec: Obj
    old: Obj | None = None


def update(old: Obj, new: Obj) -> Example:
    return Example(new, old)


@dataclass(frozen=True)
class RuleExamples:
    """One CRD rule (where it sits, its CEL, its message) and specs it accepts and refuses."""

    path: str
    rule: str
    message: str
    accepts: dict[str, Example | Obj] = field(default_factory=dict)
    refuses: dict[str, Example | Obj] = field(default_factory=dict)

    @property
    def key(self) -> Rule:
        return Rule(self.path, self.rule, self.message)


RULES = [
    RuleExamples(
        path="spec",
        rule="!has(self.deadLetterStream) || self.stream != self.deadLetterStream",
        message="stream and deadLetterStream must differ",
        accepts={
            "dead_letter_stream_left_unset": queue(),
            "dead_letter_stream_of_its_own": queue(deadLetterStream="jobs:dead"),
        },
        refuses={
            "dead_letter_stream_equal_to_stream": queue(
                stream="mail:work", deadLetterStream="mail:work"
            ),
            "dead_letter_stream_equal_to_the_default_stream": {
                "worker": worker(),
                "deadLetterStream": "jobs:work",
            },
        },
    ),
    RuleExamples(
        path="spec",
        rule="has(self.worker.image) || (has(self.podTemplate) && has(self.podTemplate.spec)"
        " && has(self.podTemplate.spec.containers)"
        " && self.podTemplate.spec.containers.exists(c, has(c.image)))",
        message="worker.image is required (or a podTemplate whose worker container names it)",
        accepts={
            "image_in_worker": queue(),
            "image_in_worker_beside_a_pod_template_without_one": queue(
                podTemplate={"spec": {"containers": [{"name": "worker", "resources": {}}]}}
            ),
            "image_in_the_pod_templates_worker_container": queue(
                worker=worker(image=None),
                podTemplate={
                    "spec": {"containers": [{"name": "worker", "image": "ghcr.io/acme/j:1"}]}
                },
            ),
        },
        refuses={
            "no_image_anywhere": queue(worker=worker(image=None)),
            "a_pod_template_without_an_image": queue(
                worker=worker(image=None),
                podTemplate={"spec": {"containers": [{"name": "worker", "resources": {}}]}},
            ),
            "a_pod_template_without_containers": queue(
                worker=worker(image=None),
                podTemplate={"metadata": {"labels": {"team": "platform"}}},
            ),
        },
    ),
    RuleExamples(
        path="spec",
        rule="!has(self.laneMode) || self.laneMode != 'Weighted'"
        " || (has(self.lanes) && size(self.lanes) > 0)",
        message="laneMode Weighted needs lanes",
        accepts={
            "weighted_lanes": queue(lanes=LANES, laneMode="Weighted"),
            "no_lanes_and_no_lane_mode": queue(),
            "strict_without_lanes": queue(laneMode="Strict"),
        },
        refuses={
            "weighted_without_lanes": queue(laneMode="Weighted"),
            "weighted_with_an_empty_lane_list": queue(laneMode="Weighted", lanes=[]),
        },
    ),
    RuleExamples(
        path="spec",
        rule="!has(self.laneMode) || self.laneMode != 'Strict' || !has(self.lanes)"
        " || self.lanes.all(l, !has(l.weight))",
        message="lanes[].weight is for laneMode Weighted: set it so, or leave laneMode unset",
        accepts={
            "strict_lanes_without_weights": queue(lanes=LANES, laneMode="Strict"),
            "weights_with_lane_mode_unset": queue(lanes=WEIGHTED_LANES),
            "weights_with_lane_mode_weighted": queue(lanes=WEIGHTED_LANES, laneMode="Weighted"),
        },
        refuses={
            "strict_with_weights": queue(lanes=WEIGHTED_LANES, laneMode="Strict"),
            "strict_with_one_weighted_lane": queue(
                lanes=[{**LANES[0], "weight": 2}, *LANES[1:]], laneMode="Strict"
            ),
        },
    ),
    RuleExamples(
        path="spec.redis",
        rule="!(has(self.url) && has(self.secretRef))",
        message="give redis.url or redis.secretRef, not both",
        accepts={
            "redis_secret_ref_alone": queue(),
            "redis_url_alone": queue(redis={"url": "redis://redis.jobqueue:6379/0"}),
            "neither_redis_url_nor_secret_ref": queue(redis={}),
        },
        refuses={
            "redis_url_and_secret_ref_together": queue(
                redis={"url": "redis://redis:6379/0", "secretRef": {"name": "jobqueue-redis"}}
            ),
        },
    ),
    RuleExamples(
        path="spec.redis",
        rule="!self.tls || !has(self.url) || self.url.startsWith('rediss')",
        message="redis.tls needs a rediss://, rediss+sentinel:// or rediss+cluster:// url",
        accepts={
            "tls_with_a_rediss_url": queue(redis={"url": "rediss://redis:6380/0", "tls": True}),
            "tls_with_a_rediss_sentinel_url": queue(
                redis={"url": "rediss+sentinel://sentinel:26379/mymaster", "tls": True}
            ),
            "tls_with_a_rediss_cluster_url": queue(
                redis={"url": "rediss+cluster://redis-0:6380", "tls": True}
            ),
            "tls_with_the_url_in_a_secret": queue(
                redis={"secretRef": {"name": "jobqueue-redis"}, "tls": True}
            ),
            "plain_redis_url_without_tls": queue(redis={"url": "redis://redis:6379/0"}),
        },
        refuses={
            "tls_with_a_plain_redis_url": queue(redis={"url": "redis://redis:6379/0", "tls": True}),
            "tls_with_a_plain_sentinel_url": queue(
                redis={"url": "redis+sentinel://sentinel:26379/mymaster", "tls": True}
            ),
        },
    ),
    RuleExamples(
        path="spec.partitions",
        rule="self == oldSelf",
        message=PARTITIONS_FIXED,
        accepts={
            "partitions_given_when_the_queue_is_created": queue(partitions=3),
            "an_update_that_keeps_the_partitions": update(
                queue(partitions=3), queue(partitions=3, jobTimeoutSeconds=60)
            ),
            "partitions_written_out_at_their_default": update(queue(), queue(partitions=1)),
        },
        refuses={
            "partitions_changed_on_a_live_queue": update(queue(partitions=3), queue(partitions=4)),
            "partitions_added_to_a_queue_created_without": update(queue(), queue(partitions=2)),
        },
    ),
    RuleExamples(
        path="spec.retry.backoff",
        rule="self.capSeconds >= self.baseSeconds",
        message="capSeconds must be >= baseSeconds",
        accepts={
            "cap_above_base": queue(retry={"backoff": {"baseSeconds": 1, "capSeconds": 60}}),
            "fractional_base_under_a_whole_cap": queue(
                retry={"backoff": {"baseSeconds": 0.5, "capSeconds": 60}}
            ),
            "cap_equal_to_base": queue(retry={"backoff": {"baseSeconds": 5, "capSeconds": 5.0}}),
            "backoff_left_at_its_defaults": queue(retry={"maxAttempts": 5}),
        },
        refuses={
            "cap_below_base": queue(retry={"backoff": {"baseSeconds": 30, "capSeconds": 10}}),
            "base_above_the_default_cap": queue(retry={"backoff": {"baseSeconds": 900}}),
        },
    ),
    RuleExamples(
        path="spec.worker.env[]",
        rule="!(has(self.value) && has(self.valueFrom))",
        message="give value or valueFrom, not both",
        accepts={
            "env_with_a_value": queue(worker=worker(env=[{"name": "LOG_LEVEL", "value": "debug"}])),
            "env_from_a_source": queue(
                worker=worker(env=[{"name": "SMTP_PASSWORD", "valueFrom": SMTP_PASSWORD}])
            ),
            "env_with_neither_an_empty_variable": queue(worker=worker(env=[{"name": "EMPTY"}])),
        },
        refuses={
            "env_with_value_and_value_from": queue(
                worker=worker(
                    env=[
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "SMTP_PASSWORD", "value": "hunter2", "valueFrom": SMTP_PASSWORD},
                    ]
                )
            ),
        },
    ),
    RuleExamples(
        path="spec.worker.env[].valueFrom",
        rule="[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)]"
        ".filter(x, x).size() == 1",
        message="valueFrom needs exactly one source",
        accepts={
            "value_from_a_secret_key": queue(
                worker=worker(env=[{"name": "SMTP_PASSWORD", "valueFrom": SMTP_PASSWORD}])
            ),
            "value_from_a_config_map_key": queue(
                worker=worker(env=[{"name": "SMTP_HOST", "valueFrom": SMTP_HOST}])
            ),
            "value_from_a_pod_field": queue(
                worker=worker(env=[{"name": "NAMESPACE", "valueFrom": NAMESPACE}])
            ),
        },
        refuses={
            "value_from_without_a_source": queue(
                worker=worker(env=[{"name": "SMTP_HOST", "valueFrom": {}}])
            ),
            "value_from_with_two_sources": queue(
                worker=worker(env=[{"name": "SMTP", "valueFrom": {**SMTP_PASSWORD, **SMTP_HOST}}])
            ),
            "value_from_with_all_three_sources": queue(
                worker=worker(
                    env=[{"name": "X", "valueFrom": {**SMTP_PASSWORD, **SMTP_HOST, **NAMESPACE}}]
                )
            ),
        },
    ),
    RuleExamples(
        path="spec.scaling",
        rule="self.minReplicas <= self.maxReplicas",
        message="minReplicas must be <= maxReplicas",
        accepts={
            "min_below_max": queue(scaling={"minReplicas": 2, "maxReplicas": 20}),
            "min_equal_to_max": queue(scaling={"minReplicas": 3, "maxReplicas": 3}),
            "scale_to_zero_by_default": queue(scaling={"lagPerReplica": 50}),
        },
        refuses={
            "min_above_max": queue(scaling={"minReplicas": 5, "maxReplicas": 2}),
            "min_above_the_default_max": queue(scaling={"minReplicas": 12}),
        },
    ),
    RuleExamples(
        path="spec.disruptionBudget",
        rule="has(self.minAvailable) != has(self.maxUnavailable)",
        message="give minAvailable or maxUnavailable, exactly one",
        accepts={
            "budget_of_max_unavailable": queue(disruptionBudget={"maxUnavailable": 1}),
            "budget_of_min_available": queue(disruptionBudget={"minAvailable": "50%"}),
            "no_budget": queue(),
        },
        refuses={
            "budget_of_both": queue(disruptionBudget={"minAvailable": 1, "maxUnavailable": 1}),
            "empty_budget": queue(disruptionBudget={}),
        },
    ),
    RuleExamples(
        path="spec.disruptionBudget",
        rule="!has(self.minAvailable) || (type(self.minAvailable) == int"
        " ? self.minAvailable >= 0 : self.minAvailable.matches('^(100|0?[0-9]{1,2})%$'))",
        message="minAvailable: a number of pods >= 0 or a percentage up to 100% like '25%'",
        accepts={
            "min_available_a_number_of_pods": queue(disruptionBudget={"minAvailable": 2}),
            "min_available_zero": queue(disruptionBudget={"minAvailable": 0}),
            "min_available_a_percentage": queue(disruptionBudget={"minAvailable": "25%"}),
            "min_available_all_pods": queue(disruptionBudget={"minAvailable": "100%"}),
        },
        refuses={
            "min_available_negative": queue(disruptionBudget={"minAvailable": -1}),
            "min_available_a_number_as_text": queue(disruptionBudget={"minAvailable": "2"}),
            "min_available_a_word": queue(disruptionBudget={"minAvailable": "half"}),
            # A PodDisruptionBudget of over 100% is refused by Kubernetes, when the operator
            # creates it: the JobQueue is refused up front instead.
            "min_available_over_all_pods": queue(disruptionBudget={"minAvailable": "150%"}),
        },
    ),
    RuleExamples(
        path="spec.disruptionBudget",
        rule="!has(self.maxUnavailable) || (type(self.maxUnavailable) == int"
        " ? self.maxUnavailable >= 0 : self.maxUnavailable.matches('^(100|0?[0-9]{1,2})%$'))",
        message="maxUnavailable: a number of pods >= 0 or a percentage up to 100% like '25%'",
        accepts={
            "max_unavailable_one_pod": queue(disruptionBudget={"maxUnavailable": 1}),
            "max_unavailable_a_percentage": queue(disruptionBudget={"maxUnavailable": "10%"}),
            "max_unavailable_all_pods": queue(disruptionBudget={"maxUnavailable": "100%"}),
            "max_unavailable_a_percentage_written_with_a_zero": queue(
                disruptionBudget={"maxUnavailable": "05%"}
            ),
        },
        refuses={
            "max_unavailable_negative": queue(disruptionBudget={"maxUnavailable": -2}),
            "max_unavailable_over_all_pods": queue(disruptionBudget={"maxUnavailable": "101%"}),
            "max_unavailable_a_fraction_as_text": queue(disruptionBudget={"maxUnavailable": "0.5"}),
            "max_unavailable_a_percentage_with_a_space": queue(
                disruptionBudget={"maxUnavailable": "10 %"}
            ),
        },
    ),
    RuleExamples(
        path="spec.limits[]",
        rule="has(self.rate) || has(self.concurrency)",
        message="a limit needs rate or concurrency",
        accepts={
            "limit_of_rate": queue(limits=[{"type": "email", "rate": {"jobs": 50}}]),
            "limit_of_concurrency": queue(limits=[{"type": "report", "concurrency": 3}]),
            "limit_of_both": queue(
                limits=[
                    {"type": "report", "rate": {"jobs": 10, "periodSeconds": 60}, "concurrency": 3}
                ]
            ),
        },
        refuses={
            "limit_of_neither": queue(
                limits=[{"type": "email", "rate": {"jobs": 50}}, {"type": "report"}]
            ),
        },
    ),
]


def examples(outcome: str) -> list[Any]:
    return [
        pytest.param(rule, example if isinstance(example, Example) else Example(example), id=name)
        for rule in RULES
        for name, example in getattr(rule, outcome).items()
    ]


def jobqueue(spec: Obj) -> Obj:
    return {
        "apiVersion": "jobqueue.dev/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": "mail", "namespace": "jobqueue"},
        "spec": spec,
    }


def test_every_crd_rule_has_examples() -> None:
    assert sorted(find_rules(), key=str) == sorted((r.key for r in RULES), key=str)
    assert len(RULES) == len({r.key for r in RULES}), "one entry per rule"
    for rule in RULES:
        assert rule.accepts, f"{rule.path}: {rule.rule}: nothing it accepts"
        assert rule.refuses, f"{rule.path}: {rule.rule}: nothing it refuses"


@pytest.mark.parametrize(("rule", "example"), examples("accepts"))
def test_the_crd_accepts(rule: RuleExamples, example: Example) -> None:
    for spec in filter(None, (example.old, example.spec)):
        validate_jobqueue(jobqueue(spec))
        JobQueueSpec.model_validate(spec)

    assert [str(r) for r in refusals(example.spec, example.old)] == []


@pytest.mark.parametrize(("rule", "example"), examples("refuses"))
def test_the_crd_refuses(rule: RuleExamples, example: Example) -> None:
    for spec in filter(None, (example.old, example.spec)):
        validate_jobqueue(jobqueue(spec))  # the OpenAPI schema alone would let it in
    if example.old is None:
        with pytest.raises(ValidationError):  # the operator's spec model refuses it too
            JobQueueSpec.model_validate(example.spec)
    else:
        # A change (of partitions) the model cannot see: it reads one spec, each valid;
        # the operator keeps the count it made the queue with (tests/operator/test_partitions.py).
        JobQueueSpec.model_validate(example.spec)

    refused = refusals(example.spec, example.old)

    assert [(r.rule, r.message) for r in refused] == [(rule.key, rule.message)]


def test_a_transition_rule_runs_on_updates_only() -> None:
    # Creating a queue of 4 partitions compares with nothing; updating one to 4 does.
    assert refusals(queue(partitions=4)) == []
    assert [r.field for r in refusals(queue(partitions=4), queue(partitions=3))] == [
        "spec.partitions"
    ]


def test_a_rule_that_cannot_be_evaluated_refuses() -> None:
    # The API server refuses an object a rule fails on ("no such key"); so does the
    # evaluator here, rather than letting the object through.
    broken = Rule("spec.scaling", "self.maxReplica > 0", "typo in the rule")
    schema = jobqueue_schema()["properties"]["spec"]["properties"]["scaling"]

    refusal = evaluate(broken, "spec.scaling", schema, {"maxReplicas": 3}, None)

    assert refusal is not None
    assert refusal.message.startswith("evaluation error:")


@pytest.mark.parametrize(
    "path", ["manifests/samples/jobqueue.yaml", "examples/myapp/jobqueue.yaml"]
)
def test_the_shipped_jobqueues_pass_every_rule(path: str) -> None:
    [document] = [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d]

    assert refusals(document["spec"]) == []
    assert refusals(document["spec"], old_spec=document["spec"]) == []
