"""The typed spec of a ``JobQueue`` resource: one model for the CRD, the operator and local mode.

The CRD's OpenAPI schema is generated from these models (`jobqueue.operator.crd`), so the
cluster validates and defaults exactly what this module accepts. Field names are
snake_case in Python and camelCase in YAML (``jobTimeoutSeconds``), as Kubernetes users
expect; unknown keys are an error, never silently dropped.

Use `load_jobqueue` for a whole YAML document (``apiVersion``/``kind``/``metadata``/``spec``)
and `JobQueueSpec.model_validate` for a ``spec`` mapping (what Kopf hands a handler).
Every failure is a `jobqueue.core.errors.ConfigError` naming the offending fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from jobqueue.core.errors import ConfigError
from jobqueue.core.keys import DEFAULT_GROUP, DEFAULT_STREAM, check_stream_name
from jobqueue.core.lanes import Lanes
from jobqueue.core.limits import TypeLimit
from jobqueue.core.settings import MAX_PARTITIONS, check_redis_url
from jobqueue.operator.spec_base import SpecModel
from jobqueue.operator.spec_base import cel as _cel
from jobqueue.operator.spec_lanes import (
    MAX_LANES,
    LaneMode,
    LaneSpec,
    lane_mode_env,
    lanes_text,
    parse_lane_specs,
    weights_in_effect,
)
from jobqueue.operator.spec_limits import LimitSpec
from jobqueue.operator.spec_workloads import DisruptionBudgetSpec, PodTemplate, ScheduleSpec

GROUP = "jobqueue.dev"
VERSION = "v1alpha1"
KIND = "JobQueue"
PLURAL = "jobqueues"
SINGULAR = "jobqueue"
SHORT_NAMES = ("jq",)
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_TARGET_BACKLOG_S = 30.0
"""Target used when a spec names neither ``targetBacklogSeconds`` nor ``lagPerReplica``."""
GRACE_MARGIN_S = 30
"""Seconds added to the job timeout for the default termination grace period."""
PARTITIONS_FIXED = (
    "partitions cannot change on a live queue: its jobs, status records and dead letters"
    " stay in the partitions they were enqueued to (make a new JobQueue and drain this one)"
)


class SecretKeyRef(SpecModel):
    """One key of a Secret in the JobQueue's namespace."""

    name: str = Field(min_length=1)
    """Name of the Secret."""
    key: str = Field(default="url", min_length=1)
    """Key in the Secret whose value is the Redis URL."""


def uses_tls(url: str) -> bool:
    """Whether ``url`` speaks TLS to Redis (``rediss://``, ``rediss+sentinel://``,
    ``rediss+cluster://``)."""
    return url.startswith(("rediss://", "rediss+sentinel://", "rediss+cluster://"))


class RedisSpec(SpecModel):
    """Where the queue's Redis is: a URL, or a Secret holding one (never both)."""

    model_config = _cel(
        ("!(has(self.url) && has(self.secretRef))", "give redis.url or redis.secretRef, not both"),
        (
            "!self.tls || !has(self.url) || self.url.startsWith('rediss')",
            "redis.tls needs a rediss://, rediss+sentinel:// or rediss+cluster:// url",
        ),
    )

    url: str | None = Field(default=None, pattern=r"^rediss?(\+sentinel|\+cluster)?://")
    """``redis://`` or ``rediss://`` URL, a Sentinel setup's ``redis+sentinel://`` /
    ``rediss+sentinel://`` URL, or a Redis Cluster's ``redis+cluster://`` /
    ``rediss+cluster://`` URL (docs/configuration.md); local mode falls back to
    ``REDIS_URL``."""
    secret_ref: SecretKeyRef | None = None
    """Secret key holding the URL (use this when the URL carries a password)."""
    tls: bool = False
    """Require TLS: the URL must use ``rediss://`` (or ``rediss+sentinel://``,
    ``rediss+cluster://``)."""

    @model_validator(mode="after")
    def _one_source(self) -> RedisSpec:
        if self.url is not None and self.secret_ref is not None:
            raise ValueError("give redis.url or redis.secretRef, not both")
        if self.tls and self.url is not None and not uses_tls(self.url):
            raise ValueError("redis.tls is true but redis.url does not start with rediss://")
        if self.url is not None:
            try:
                check_redis_url(self.url)  # what the pattern cannot see, e.g. a bad port
            except ConfigError as exc:
                raise ValueError(f"redis.url: {exc}") from None
        return self


class BackoffSpec(SpecModel):
    """Exponential backoff with full jitter between attempts."""

    model_config = _cel(
        ("self.capSeconds >= self.baseSeconds", "capSeconds must be >= baseSeconds"),
    )

    base_seconds: float = Field(default=1.0, gt=0)
    """Delay before the first retry, in seconds (doubles per attempt, jittered)."""
    cap_seconds: float = Field(default=600.0, gt=0)
    """Longest delay between two attempts, in seconds."""

    @model_validator(mode="after")
    def _cap_above_base(self) -> BackoffSpec:
        if self.cap_seconds < self.base_seconds:
            raise ValueError("retry.backoff.capSeconds must be >= baseSeconds")
        return self


class RetrySpec(SpecModel):
    """How often a failing job is tried again."""

    max_attempts: int = Field(default=20, ge=1, le=1000)
    """Attempts per job, the first included, before it is dead-lettered."""
    backoff: BackoffSpec = Field(default_factory=BackoffSpec)


class EnvKeyRef(SpecModel):
    """A key of a Secret or ConfigMap."""

    name: str = Field(min_length=1)
    key: str = Field(min_length=1)
    optional: bool | None = None


class FieldRef(SpecModel):
    """A field of the pod (downward API), e.g. ``metadata.namespace``."""

    field_path: str = Field(min_length=1)


class EnvVarSource(SpecModel):
    """Where an environment variable's value comes from (exactly one)."""

    model_config = _cel(
        (
            "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)]"
            ".filter(x, x).size() == 1",
            "valueFrom needs exactly one source",
        ),
    )

    secret_key_ref: EnvKeyRef | None = None
    config_map_key_ref: EnvKeyRef | None = None
    field_ref: FieldRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvVarSource:
        given = [s for s in (self.secret_key_ref, self.config_map_key_ref, self.field_ref) if s]
        if len(given) != 1:
            raise ValueError("valueFrom needs exactly one of secretKeyRef/configMapKeyRef/fieldRef")
        return self


class EnvVar(SpecModel):
    """An extra environment variable of the worker container."""

    model_config = _cel(
        ("!(has(self.value) && has(self.valueFrom))", "give value or valueFrom, not both"),
    )

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    value: str | None = None
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _value_or_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"env {self.name}: give value or valueFrom, not both")
        return self


class ResourcesSpec(SpecModel):
    """Compute resources of one worker container (Kubernetes quantities, e.g. ``250m``)."""

    requests: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "128Mi"},
    )
    limits: dict[str, str] = Field(default_factory=lambda: {"memory": "512Mi"})


class WorkerSpec(SpecModel):
    """The worker pods: what they run and how."""

    image: str | None = Field(default=None, min_length=1)
    """Container image with the worker app installed (or the ``podTemplate``'s worker
    container image: one of the two is required)."""
    app: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """The worker app, ``module:attribute`` (``APP_REF`` of ``jobqueue worker``)."""
    concurrency: int = Field(default=10, ge=1, le=10_000)
    """Jobs one worker pod runs at the same time."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    env: list[EnvVar] = Field(default_factory=list)
    """Extra environment of the worker container (cannot override the queue's own)."""
    termination_grace_period_seconds: int | None = Field(default=None, ge=1)
    """Grace period of a stopping pod; default: the job timeout plus 30 s, never less."""
    image_pull_secrets: list[str] = Field(default_factory=list)
    """Names of Secrets to pull a private image with."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Labels a node must carry to run the worker pods."""
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations of the worker pods (e.g. for a service mesh or log shipping)."""


class ScalingSpec(SpecModel):
    """How the operator scales the worker Deployment."""

    model_config = _cel(
        ("self.minReplicas <= self.maxReplicas", "minReplicas must be <= maxReplicas"),
    )

    min_replicas: int = Field(default=0, ge=0)
    """Fewest worker pods; 0 lets an idle queue scale to zero."""
    max_replicas: int = Field(default=10, ge=1)
    """Most worker pods."""
    target_backlog_seconds: float | None = Field(default=None, gt=0)
    """Drain the backlog within this many seconds at the measured rate (default 30)."""
    lag_per_replica: int | None = Field(default=None, ge=1)
    """Waiting plus in-flight jobs one pod should carry (KEDA's ``lagCount``)."""
    scale_down_stabilization_seconds: float = Field(default=60.0, ge=0)
    """Scale down only to the highest recommendation of this many past seconds."""
    idle_seconds_before_zero: float = Field(default=300.0, ge=0)
    """Seconds a queue must be fully idle before scaling to zero replicas."""
    poll_interval_seconds: float = Field(default=1.0, ge=0.1, le=300)
    """Seconds between two samples of Redis."""

    @model_validator(mode="after")
    def _bounds(self) -> ScalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("scaling.minReplicas must be <= maxReplicas")
        return self

    @property
    def effective_target_backlog_s(self) -> float | None:
        """The backlog target in seconds; the default applies when no target was given."""
        if self.target_backlog_seconds is None and self.lag_per_replica is None:
            return DEFAULT_TARGET_BACKLOG_S
        return self.target_backlog_seconds


K8sObject = Annotated[
    dict[str, JsonValue],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A Kubernetes object the API server validates when the operator writes it (here a
NetworkPolicyPeer or NetworkPolicyEgressRule)."""


class NetworkPolicySpec(SpecModel):
    """A NetworkPolicy the operator owns for the worker pods (off unless ``enabled``)."""

    enabled: bool = False
    """Create it: worker pods then reach only DNS, Redis (the port of its URL) and
    ``extraEgress``, and accept connections only on their metrics port."""
    redis_peers: list[K8sObject] = Field(default_factory=list)
    """NetworkPolicyPeers where Redis runs; empty: any address, on Redis' port only."""
    extra_egress: list[K8sObject] = Field(default_factory=list)
    """More NetworkPolicyEgressRules, for handlers that call other services."""
    metrics_from: list[K8sObject] = Field(default_factory=list)
    """NetworkPolicyPeers allowed to scrape the workers' metrics; empty: any."""


class JobQueueSpec(SpecModel):
    """The ``spec`` of a JobQueue."""

    model_config = _cel(
        (
            "!has(self.deadLetterStream) || self.stream != self.deadLetterStream",
            "stream and deadLetterStream must differ",
        ),
        (
            "has(self.worker.image) || (has(self.podTemplate) && has(self.podTemplate.spec)"
            " && has(self.podTemplate.spec.containers)"
            " && self.podTemplate.spec.containers.exists(c, has(c.image)))",
            "worker.image is required (or a podTemplate whose worker container names it)",
        ),
        (
            "!has(self.laneMode) || self.laneMode != 'Weighted'"
            " || (has(self.lanes) && size(self.lanes) > 0)",
            "laneMode Weighted needs lanes",
        ),
        (
            "!has(self.laneMode) || self.laneMode != 'Strict' || !has(self.lanes)"
            " || self.lanes.all(l, !has(l.weight))",
            "lanes[].weight is for laneMode Weighted: set it so, or leave laneMode unset",
        ),
    )

    redis: RedisSpec = Field(default_factory=RedisSpec)
    stream: str = Field(default=DEFAULT_STREAM, min_length=1)
    """Stream of ready jobs."""
    group: str = Field(default=DEFAULT_GROUP, min_length=1)
    """Consumer group the workers read with."""
    dead_letter_stream: str | None = Field(default=None, min_length=1)
    """Stream of dead letters; unset: ``{<stream>}:dead``, in the stream's Cluster slot."""
    partitions: int = Field(
        default=1,
        ge=1,
        le=MAX_PARTITIONS,
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": PARTITIONS_FIXED}]
        },
    )
    """Independent streams the queue is split into, spread over a Redis Cluster's
    primaries (each with its own keys, in its own slot); fixed once the queue exists."""
    retry: RetrySpec = Field(default_factory=RetrySpec)
    job_timeout_seconds: float = Field(default=300.0, gt=0)
    """Longest run of one attempt, in seconds; then it fails and is retried."""
    visibility_timeout_seconds: float = Field(default=60.0, gt=0)
    """Seconds a delivered job may go without a heartbeat before another pod reclaims it."""
    max_deliveries: int = Field(default=5, ge=1, le=1000)
    """Deliveries of one entry (crashed workers included) before it is dead-lettered."""
    worker: WorkerSpec
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)
    retention_policy: Literal["Retain", "Delete"] = "Retain"
    """On delete of the JobQueue: keep the streams (Retain) or delete the queue's keys."""
    pod_template: PodTemplate | None = None
    disruption_budget: DisruptionBudgetSpec | None = None
    """An optional PodDisruptionBudget of the worker pods, owned by the JobQueue."""
    network_policy: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)
    schedules: list[ScheduleSpec] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Cron schedules that enqueue jobs (run by the operator, and by local mode)."""
    limits: list[LimitSpec] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Rate and concurrency limits per job type, across every worker pod of the queue."""
    lanes: list[LaneSpec] = Field(
        default_factory=list,
        max_length=MAX_LANES,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Priority lanes: one stream per lane, served highest first; together they cover the
    priorities 1..10 exactly once. Empty: one stream, priority does not reorder work."""
    lane_mode: LaneMode | None = None
    """How workers serve the lanes: Strict (a higher lane always first) or Weighted (in
    proportion to the lanes' weights, so a backlogged lane is never starved). Unset:
    Weighted when any lane has a weight, else Strict."""

    @field_validator("lanes")
    @classmethod
    def _lanes_cover_every_priority(cls, lanes: list[LaneSpec]) -> list[LaneSpec]:
        parse_lane_specs(lanes)  # the ValueError names the gap, overlap or duplicate
        return lanes

    @property
    def queue_lanes(self) -> Lanes:
        """``lanes`` as every component reads them."""
        return parse_lane_specs(self.lanes)

    @property
    def lanes_text(self) -> str:
        """``lanes`` as ``JOBQUEUE_LANES`` text; '' for none."""
        return lanes_text(self.lanes)

    @model_validator(mode="after")
    def _lane_mode_fits_the_lanes(self) -> JobQueueSpec:
        weights_in_effect(self.lane_mode, self.lanes)  # the ValueError says what is wrong
        return self

    @property
    def lane_weights(self) -> list[int] | None:
        """Each lane's weight, highest first, in weighted mode; None in strict mode."""
        return weights_in_effect(self.lane_mode, self.lanes)

    @property
    def lane_env(self) -> dict[str, str]:
        """``JOBQUEUE_LANES``, ``JOBQUEUE_LANE_MODE`` and ``JOBQUEUE_LANE_WEIGHTS`` of the
        worker processes (each always set, empty when it does not apply)."""
        return {"JOBQUEUE_LANES": self.lanes_text, **lane_mode_env(self.lane_mode, self.lanes)}

    @model_validator(mode="after")
    def _distinct_streams(self) -> JobQueueSpec:
        if self.stream == self.dead_letter_stream:
            raise ValueError("stream and deadLetterStream must differ")
        check_stream_name(self.stream)
        return self

    @model_validator(mode="after")
    def _one_image(self) -> JobQueueSpec:
        template_image = self.template_container.get("image")
        if self.worker.image is None and template_image is None:
            raise ValueError("worker.image is required (or the podTemplate worker's image)")
        if self.worker.image is not None and template_image not in (None, self.worker.image):
            raise ValueError("worker.image and the podTemplate worker's image differ: give one")
        return self

    @model_validator(mode="after")
    def _unique_schedules(self) -> JobQueueSpec:
        names = [s.name for s in self.schedules]
        if len(names) != len(set(names)):
            raise ValueError(f"schedule names must be unique: {names}")
        return self

    @model_validator(mode="after")
    def _unique_limits(self) -> JobQueueSpec:
        types = [x.type for x in self.limits]
        if len(types) != len(set(types)):
            raise ValueError(f"limits: each type at most once, got {types}")
        return self

    @property
    def type_limits(self) -> tuple[TypeLimit, ...]:
        """``limits`` as the workers read them."""
        return tuple(x.type_limit() for x in self.limits)

    @property
    def template_container(self) -> dict[str, Any]:
        """The ``worker`` container of the pod template (empty when none)."""
        containers = ((self.pod_template or {}).get("spec") or {}).get("containers") or [{}]
        found: dict[str, Any] = containers[0]
        return found

    @property
    def image(self) -> str:
        """The worker image, from ``worker.image`` or the pod template."""
        return str(self.worker.image or self.template_container["image"])

    @property
    def grace_period_s(self) -> int:
        """Termination grace period of a worker pod, at least the job timeout plus margin."""
        floor = int(self.job_timeout_seconds) + GRACE_MARGIN_S
        given = self.worker.termination_grace_period_seconds
        return floor if given is None else max(given, floor)


class JobQueueDocument(BaseModel):
    """A whole JobQueue YAML document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_version: Literal["jobqueue.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["JobQueue"]
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: JobQueueSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "jobqueue"))


def describe_errors(exc: ValidationError) -> str:
    """One line per problem, ``where: what``, with camelCase paths as the user wrote them."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        lines.append(f"{where}: {error['msg']}")
    return "; ".join(lines)


def parse_spec(spec: Mapping[str, Any]) -> JobQueueSpec:
    """Validate a ``spec`` mapping; raise ConfigError naming every bad field."""
    try:
        return JobQueueSpec.model_validate(dict(spec))
    except ValidationError as exc:
        raise ConfigError(f"invalid JobQueue spec: {describe_errors(exc)}") from None


def load_jobqueue(text: str) -> JobQueueDocument:
    """Parse the JobQueue of a YAML file; raise ConfigError with a clear reason.

    The file may hold other objects too (``---``-separated, as ``kubectl apply -f`` takes
    them, e.g. the Secret the queue reads): the one ``kind: JobQueue`` document is used.
    """
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}") from None
    queues = [d for d in documents if isinstance(d, dict) and d.get("kind") == "JobQueue"]
    if len(queues) > 1:
        names = ", ".join(str((q.get("metadata") or {}).get("name")) for q in queues)
        raise ConfigError(f"the file holds {len(queues)} JobQueues ({names}); give one")
    data = queues[0] if queues else (documents[0] if len(documents) == 1 else None)
    if data is None and len(documents) > 1:
        raise ConfigError(f"none of the file's {len(documents)} documents is a JobQueue")
    if not isinstance(data, dict):
        raise ConfigError("a JobQueue document must be a YAML mapping")
    try:
        return JobQueueDocument.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid JobQueue: {describe_errors(exc)}") from None
