"""``pyctr events``: print events as they happen (``ctr events`` lines, or JSON)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from .app import CONTEXT_SETTINGS, format_option, pass_client
from .output import event_json, go_time, to_jsonable

if TYPE_CHECKING:
    from ..client import AsyncClient


@click.command("events", context_settings=CONTEXT_SETTINGS)
@format_option
@click.argument("filters", nargs=-1)
@pass_client
async def events(client: AsyncClient, fmt: str, filters: tuple[str, ...]) -> None:
    """Print events until interrupted, one line each: time, namespace, topic, event.

    FILTERS narrow them (any may match), e.g. 'topic=="/tasks/exit"',
    'namespace==default', 'event.container_id==web'.

    \b
    Example:
      pyctr events 'topic~="/tasks/"'
    """
    async for env in client.subscribe(*filters):
        if fmt == "json":
            line = json.dumps(to_jsonable({
                "timestamp": env.timestamp_ns, "namespace": env.namespace, "topic": env.topic,
                "type": getattr(getattr(env.event, "DESCRIPTOR", None), "full_name", None)
                or getattr(env.event, "type_url", ""),
                "event": env.event}))
        else:
            line = f"{go_time(env.timestamp_ns)} {env.namespace} {env.topic} {event_json(env.event)}"
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
