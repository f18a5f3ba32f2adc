"""The Dockerfile, split into its stages (there is no Docker engine to build it here)."""

from __future__ import annotations

from k8s.objects import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages(dockerfile: str = DOCKERFILE) -> dict[str, list[str]]:
    """Instructions of each stage, by stage name (or the image of an unnamed one), in
    order; continuation lines joined."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    text = dockerfile.replace("\\\n", " ")
    for line in text.splitlines():
        stripped = " ".join(line.split())
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.upper().startswith("FROM "):
            name = stripped.split()[-1] if " AS " in stripped.upper() else stripped.split()[1]
            current = found.setdefault(name, [])
        current.append(stripped)
    return found


def stage_env(stage: str) -> dict[str, str]:
    """The ``ENV name=value`` settings of one stage."""
    env = {}
    for line in stages()[stage]:
        if line.startswith("ENV "):
            for pair in line[4:].split():
                name, _, value = pair.partition("=")
                env[name] = value.strip('"')
    return env
