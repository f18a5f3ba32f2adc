"""``jobqueue dead list|replay|delete``: look after the dead-letter stream.

``replay`` and ``delete`` take dead-letter ids (the ``id`` column of ``dead list``) or job
ids, mixed; ``delete --all`` asks first (``--yes`` for scripts).
"""

from __future__ import annotations

from typing import Any

import click
from rich.progress import Progress

from jobqueue.core.client import AmbiguousDeadLetter, Client
from jobqueue.producer import cli_output as out
from jobqueue.producer.cli_common import connected, queue_options, queue_settings

PAGE = 500
"""Dead letters read per round trip by ``replay --all`` / ``delete --all``."""


@click.group("dead")
def dead() -> None:
    """List, replay or delete dead letters."""


@dead.command("list")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, help="Most to show.")
@click.option("--after", help="Start after this dead-letter id (paging).")
@queue_options
def dead_list(limit: int, after: str | None, **flags: Any) -> None:
    """Dead letters, oldest first."""
    with connected(queue_settings(flags)) as client:
        try:
            page = client.dead_letters(after=after, limit=limit)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--after") from None
    if flags["as_json"]:
        out.emit_json({"items": page.items, "next": page.next_after})
    else:
        out.dead_letters(page.items, page.next_after)


def _all_ids(client: Client) -> list[tuple[str, str | None]]:
    """Every dead letter's (entry id, job id): partitions' dead letters may share an id."""
    ids: list[tuple[str, str | None]] = []
    after = None
    while True:
        page = client.dead_letters(after=after, limit=PAGE)
        ids += [(d.entry_id, d.job_id) for d in page.items]
        if page.next_after is None:
            return ids
        after = page.next_after


def _each(ids: tuple[str, ...], every: bool, flags: dict[str, Any], verb: str) -> dict[str, Any]:
    """Apply ``verb`` (replay or delete) to each dead letter, with progress; a summary
    keyed by the ids as given."""
    if bool(ids) == every:
        raise click.UsageError("give dead-letter ids or job ids, or --all")
    done: dict[str, Any] = {}
    missing: list[str] = []
    with connected(queue_settings(flags)) as client:
        targets = _all_ids(client) if every else [(ref, None) for ref in ids]
        with Progress(transient=True, disable=len(targets) < PAGE) as bar:
            task = bar.add_task(verb, total=len(targets))
            for ref, job_id in targets:
                try:
                    result = _apply(client, ref, verb, resolve=not every, job_id=job_id)
                except AmbiguousDeadLetter as exc:
                    raise click.ClickException(str(exc)) from None
                if result is None:
                    missing.append(ref)
                else:
                    done[ref] = result
                bar.advance(task)
    return {"done": done, "missing": missing}


def _apply(client: Client, ref: str, verb: str, *, resolve: bool, job_id: str | None) -> Any:
    """Replay (the job id) or delete (True) the dead letter ``ref`` names; None if none.
    ``job_id`` says which job's, when partitions' dead letters share the entry id."""
    entry_id: str | None = ref
    if resolve:
        dead = client.find_dead(ref)
        entry_id, job_id = (dead.entry_id, dead.job_id) if dead is not None else (None, None)
    if entry_id is None:
        return None
    if verb == "replay":
        replayed = client.replay(entry_id, job_id=job_id)
        return replayed.job_id if replayed else None
    return client.delete_dead(entry_id, job_id=job_id) or None


def _report(summary: dict[str, Any], past: str, as_json: bool) -> None:
    if as_json:
        out.emit_json(summary)
    else:
        click.echo(f"{past} {len(summary['done'])} dead letters")
        for ref in summary["missing"]:
            click.echo(f"no dead letter {ref}", err=True)
    if summary["missing"]:
        raise click.exceptions.Exit(1)


@dead.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Replay every dead letter.")
@queue_options
def dead_replay(ids: tuple[str, ...], every: bool, **flags: Any) -> None:
    """Put dead letters back on the stream (attempts reset), removing them from the dead.

    IDS are dead-letter ids (``dead list``'s id column) or job ids."""
    _report(_each(ids, every, flags, "replay"), "replayed", flags["as_json"])


@dead.command("delete")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Delete every dead letter (asks first).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before --all (for scripts).")
@queue_options
def dead_delete(ids: tuple[str, ...], every: bool, yes: bool, **flags: Any) -> None:
    """Delete dead letters for good (IDS: dead-letter ids or job ids)."""
    if every and not ids and not yes:
        _confirm_delete_all(flags)
    _report(_each(ids, every, flags, "delete"), "deleted", flags["as_json"])


def _confirm_delete_all(flags: dict[str, Any]) -> None:
    """Ask before deleting every dead letter (no answer, e.g. no terminal: abort)."""
    settings = queue_settings(dict(flags))
    with connected(settings) as client:
        count = client.stats().dead_letters
    if count == 0:
        return
    question = f"Delete all {count} dead letters of {settings.keys.dead} for good?"
    click.confirm(f"{question} (--yes skips this)", abort=True, err=True)
