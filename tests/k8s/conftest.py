"""Rendered chart and assembled manifests, built once per session (rendering is pure)."""

from __future__ import annotations

import pytest
from k8s.objects import MANIFESTS, Obj, all_on_values, kustomize_build, kustomize_dirs, render_chart


@pytest.fixture(scope="session")
def default_objects() -> list[Obj]:
    """What `helm install jq charts/jobqueue` creates with the default values."""
    return render_chart()


@pytest.fixture(scope="session")
def all_on_objects() -> list[Obj]:
    """What the chart creates with every option on (charts/jobqueue/ci/all-on-values.yaml)."""
    return render_chart(all_on_values())


@pytest.fixture(scope="session")
def manifest_objects() -> dict[str, list[Obj]]:
    """Every kustomize directory under manifests/, assembled: path -> objects."""
    return {str(path.relative_to(MANIFESTS)): kustomize_build(path) for path in kustomize_dirs()}
