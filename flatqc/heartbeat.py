"""Heartbeats of the service's processes in Redis, so that another process (the dashboard's ``/healthz`` and
``/metrics``) can tell whether they still work.

The watcher writes the time of its last completed round and of its last rescan; each worker the time it was last
seen alive and when it last started and finished a job. Times are epoch seconds. Every key expires
``HEARTBEAT_TTL_S`` after its last write, so a process gone for good leaves nothing behind, while one that stopped
recently still shows how long ago it was last heard. Keys carry the queue name: services sharing a Redis with
different ``FLATQC_QUEUE_NAME`` keep apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis import Redis

HEARTBEAT_TTL_S = 86400
"""A heartbeat not refreshed for this long is dropped from Redis [s]."""

WATCHER_KEY = "flatqc:{queue}:heartbeat:watcher"
"""Hash: ``round`` (last completed round), ``rescan`` (last full round: rescan and repair pass)."""
WORKERS_KEY = "flatqc:{queue}:heartbeat:workers"
"""Sorted set: worker name -> last seen; the index of the per-worker hashes."""
WORKER_KEY = "flatqc:{queue}:heartbeat:worker:{name}"
"""Hash: ``seen`` (alive), ``job_started``, ``job_finished`` (last job of the QC or picture queue)."""


def beat_watcher(redis: Redis, queue: str, rescan: bool = False) -> None:
    """The watcher completed a round now (``rescan``: a full round, rescan and repair pass included)."""
    now = time.time()
    key = WATCHER_KEY.format(queue=queue)
    pipe = redis.pipeline(transaction=False)
    pipe.hset(key, mapping={"round": now, **({"rescan": now} if rescan else {})})
    pipe.expire(key, HEARTBEAT_TTL_S)
    pipe.execute()


def beat_worker(redis: Redis, queue: str, name: str, *events: str) -> None:
    """Worker ``name`` is alive now; ``events`` (``job_started``, ``job_finished``) happened now too."""
    now = time.time()
    key = WORKER_KEY.format(queue=queue, name=name)
    index = WORKERS_KEY.format(queue=queue)
    pipe = redis.pipeline(transaction=False)
    pipe.hset(key, mapping=dict.fromkeys(("seen", *events), now))
    pipe.expire(key, HEARTBEAT_TTL_S)
    pipe.zadd(index, {name: now})
    pipe.zremrangebyscore(index, "-inf", now - HEARTBEAT_TTL_S)
    pipe.expire(index, HEARTBEAT_TTL_S)
    pipe.execute()


@dataclass(frozen=True)
class Heartbeats:
    """What the processes last reported (epoch seconds), read at ``now``."""

    now: float
    watcher: dict[str, float] = field(default_factory=dict)
    workers: dict[str, dict[str, float]] = field(default_factory=dict)

    def ages(self) -> dict[str, dict]:
        """Seconds since each heartbeat: ``{"watcher": {"round": s, ...}, "workers": {name: {"seen": s, ...}}}``."""
        def since(beats: dict[str, float]) -> dict[str, float]:
            return {what: round(self.now - at, 1) for what, at in beats.items()}

        return {"watcher": since(self.watcher),
                "workers": {name: since(beats) for name, beats in sorted(self.workers.items())}}


def read_heartbeats(redis: Redis, queue: str) -> Heartbeats:
    """Every heartbeat of the service on ``queue``, in two round trips. Raises Redis errors."""
    now = time.time()
    index = WORKERS_KEY.format(queue=queue)
    names = [_text(n) for n in redis.zrangebyscore(index, now - HEARTBEAT_TTL_S, "+inf")]
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(WATCHER_KEY.format(queue=queue))
    for name in names:
        pipe.hgetall(WORKER_KEY.format(queue=queue, name=name))
    watcher, *workers = pipe.execute()

    def decoded(beats: dict) -> dict[str, float]:
        return {_text(k): float(v) for k, v in beats.items()}

    return Heartbeats(now, decoded(watcher), {n: decoded(b) for n, b in zip(names, workers, strict=True) if b})


def _text(value: object) -> str:
    """A Redis reply as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)
