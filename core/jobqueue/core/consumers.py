"""Deleting a consumer from its group without orphaning a job.

Deleting a consumer drops its pending entries from the group's PEL, and with them every
chance of reclaiming those jobs. So the check (it holds nothing) and the delete are one
Lua step: no entry can be delivered to it in between. Both the workers (pruning departed
peers) and the operator (reaping consumers of vanished pods) delete through this.
"""

from __future__ import annotations

from redis.asyncio import Redis

from jobqueue.core.keys import QueueKeys

# KEYS: stream, started, solo; ARGV[1] group, ARGV[2] consumer. 1 = deleted, 0 = kept (it
# holds entries). The consumer's crash-accounting records go with it.
_DELETE_IF_IDLE = """#!lua
local held = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #held > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
"""


async def delete_consumer_if_idle(redis: Redis, keys: QueueKeys, consumer: str) -> bool:
    """Delete ``consumer`` from the queue's group if it holds no pending entry.

    Returns whether it was deleted."""
    reply = await redis.eval(
        _DELETE_IF_IDLE, 3, keys.stream, keys.started, keys.solo, keys.group, consumer
    )
    return bool(int(reply))
