"""``jobqueue operator`` (run the Kopf operator) and ``jobqueue crd`` (print the CRD).

Flags win over the environment (`OperatorSettings.from_env`), the environment over the
defaults.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
from typing import Any

import click

from jobqueue.core.errors import ConfigError
from jobqueue.core.log_flags import log_options
from jobqueue.core.logs import LogSettings, setup_logging
from jobqueue.operator.crd import crd_yaml
from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.settings import OperatorSettings, check_namespaces

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


@click.command("operator")
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="Watch only this namespace (repeatable) [JOBQUEUE_OPERATOR_NAMESPACES; all].",
)
@click.option("--http-port", type=int, help="/healthz and /metrics port, 0 = off [8080].")
@click.option(
    "--standalone/--peering",
    default=None,
    help="Run alone, or coordinate replicas by Kopf peering [JOBQUEUE_OPERATOR_STANDALONE].",
)
@click.option("--priority", type=int, help="Peering priority [JOBQUEUE_OPERATOR_PRIORITY, 0].")
@click.option("--verbose", "-v", is_flag=True, help="Debug logging (same as --log-level DEBUG).")
@log_options
def operator(
    namespaces: tuple[str, ...],
    http_port: int | None,
    standalone: bool | None,
    priority: int | None,
    verbose: bool,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Run the Kubernetes operator: scale each JobQueue's workers on its lag."""
    try:
        settings = OperatorSettings.from_env()
        logs = LogSettings.from_env().with_flags("DEBUG" if verbose else log_level, log_format)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    # On the root logger: Kopf's own records (not configured by Kopf here) use it too.
    setup_logging(logs, "operator", pod=os.environ.get("POD_NAME") or socket.gethostname())
    try:
        namespaces = check_namespaces(namespaces)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--namespace") from None
    changes: dict[str, Any] = {
        "namespaces": namespaces or None,
        "http_port": http_port,
        "standalone": standalone,
        "priority": priority,
    }
    settings = dataclasses.replace(settings, **{k: v for k, v in changes.items() if v is not None})
    _check_credentials()
    asyncio.run(_serve(OperatorContext(settings=settings)))


def _check_credentials() -> None:
    """Fail in words where Kopf's login would crash with a traceback: no way to a cluster.

    Kopf logs in with the pod's ServiceAccount token, else the kubeconfig (``KUBECONFIG``,
    else ``~/.kube/config``); this checks that one of them is there to read.
    """
    if os.path.exists(SERVICE_ACCOUNT_TOKEN):
        return
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if kubeconfig:
        paths = [os.path.expanduser(p.strip()) for p in kubeconfig.split(os.pathsep) if p.strip()]
        missing = [path for path in paths if not os.path.isfile(path)]
        if missing:
            raise click.ClickException(f"KUBECONFIG names {missing[0]}, which does not exist")
        return
    if not os.path.isfile(os.path.expanduser("~/.kube/config")):
        raise click.ClickException(
            "no Kubernetes credentials: not in a pod with a ServiceAccount token, "
            "KUBECONFIG is unset and ~/.kube/config does not exist"
        )


async def _serve(ctx: OperatorContext) -> None:
    # Imported here: Kopf is only needed when the operator actually runs.
    from jobqueue.operator.controller import run_operator
    from jobqueue.operator.http import start_http

    runner = None
    if ctx.settings.http_port:
        runner = await start_http(ctx.metrics, ctx.settings.http_port)
    try:
        await run_operator(ctx)
    finally:
        if runner is not None:
            await runner.cleanup()


@click.command("crd")
def crd() -> None:
    """Print the JobQueue CRD generated from the spec model (what scripts/gen-crd commits)."""
    click.echo(crd_yaml(), nl=False)
