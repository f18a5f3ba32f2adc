"""The install steps the READMEs show work as written: every Secret the sample JobQueue
reads is created by a step before it, and the chart gets the same Redis URL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from k8s.objects import CHART, MANIFESTS, ROOT, kustomize_build, load_documents

READMES = [ROOT / "README.md", CHART / "README.md"]


def install_block(readme: Path) -> list[str]:
    """The lines of the README's bash block that runs ``helm install``, continuations joined."""
    blocks = re.findall(r"```bash\n(.*?)```", readme.read_text(), flags=re.S)
    [block] = [b for b in blocks if "helm install" in b]
    return block.replace("\\\n", " ").splitlines()


def applied(lines: list[str]) -> list[str]:
    """What each ``kubectl apply -f/-k PATH`` line applies, in order."""
    found = (re.search(r"kubectl apply -[fk] (\S+)", line) for line in lines)
    return [match.group(1).rstrip("/") for match in found if match]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_sample_finds_its_redis_secret_created_by_an_earlier_step(readme: Path) -> None:
    # Given the README's install steps
    steps = applied(install_block(readme))
    sample_step = steps.index("manifests/samples/jobqueue.yaml")

    # Then the Secret the sample reads its Redis URL from is applied before the sample
    [sample] = load_documents((MANIFESTS / "samples" / "jobqueue.yaml").read_text())
    wanted = sample["spec"]["redis"]["secretRef"]["name"]
    earlier = [
        obj
        for step in steps[:sample_step]
        if (ROOT / step).is_dir()
        for obj in kustomize_build(ROOT / step)
    ]
    secrets = {o["metadata"]["name"]: o for o in earlier if o["kind"] == "Secret"}
    assert wanted in secrets, f"{readme.name}: no step before the sample creates {wanted!r}"

    # And the chart is given the Redis URL that Secret holds (producer and helm test)
    helm = next(line for line in install_block(readme) if "helm install" in line)
    chart_url = re.search(r"--set redis\.url=(\S+)", helm)
    assert chart_url is not None
    assert chart_url.group(1) == secrets[wanted]["stringData"]["url"]
