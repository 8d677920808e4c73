#!/usr/bin/env python3
"""The seed's design, written the way the seed's document writes it.

This is the baseline `kuryer bench` compares kuryer with. It is meant to work
as the seed intends, not to be a straw man:

- a reader polls every channel in parallel each cycle
  (`asyncio.gather(*[process_channel(c) for c in channels])`, errors per
  channel logged, not fatal), reading the history above the channel's
  `last_message_id` (here from the fake Telegram's history route, standing in
  for Pyrogram's `get_chat_history`);
- for the new posts of a channel it loads the channel's active subscriptions
  with one eager-loading query (no N+1);
- each delivery: the Redis dedup key `fwd:{subscription_id}:{message_id}`
  is checked, the post is copied with aiogram (`copy_message`, or
  `copy_messages` for an album) under `asyncio.Semaphore(30)` with a fixed
  `asyncio.sleep(0.05)` after each send (`--send-pause`, the seed's 0.05 s
  by default; 0 leaves the sleep out, so that the design is measured rather
  than its pause: 30 slots held 0.05 s each cap it at 600 sends a second),
  then one INSERT + commit of its `forwarded_messages` row and `SET … EX`
  (SETEX) of the dedup key for 24 h;
- the pool is the seed's 20 + 40 overflow (asyncpg, min 20, max 60);
- a 429 is honoured (sleep `retry_after`, send again), as aiogram users do.

Usage (run by `kuryer bench`; the bot token and the database and Redis URLs
come in BENCH_BOT_TOKEN, BENCH_DATABASE_URL and BENCH_REDIS_URL, so that no
secret is ever on a command line):

    seed_baseline.py --bot-api URL --control URL --key-prefix P --expect N
                     [--send-pause SECONDS]

It prints `{"ready": true}` once connected, then one JSON line of results.
"""

import argparse
import asyncio
import json
import logging
import os
import resource
import sys
import time
from datetime import datetime, timezone

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter

log = logging.getLogger("seed_baseline")


class Timer:
    """Count and total time of one kind of operation."""

    def __init__(self):
        self.n = 0
        self.total = 0.0

    def add(self, seconds):
        self.n += 1
        self.total += seconds

    def avg_ms(self):
        return self.total / self.n * 1000.0 if self.n else 0.0


class Baseline:
    def __init__(self, args):
        self.args = args
        self.semaphore = asyncio.Semaphore(30)
        self.db_timer = Timer()
        self.redis_timer = Timer()
        self.sent = 0
        self.failed = 0
        self.skipped = 0
        self.retried_429 = 0
        self.post_day = datetime.now(timezone.utc).date()

    async def start(self):
        server = TelegramAPIServer.from_base(self.args.bot_api)
        self.bot = Bot(token=os.environ["BENCH_BOT_TOKEN"], session=AiohttpSession(api=server))
        # The seed's pool: 20 connections plus 40 overflow.
        self.pool = await asyncpg.create_pool(
            os.environ["BENCH_DATABASE_URL"], min_size=20, max_size=60
        )
        # A pool that waits for a free connection: redis-py's default pool
        # raises MaxConnectionsError past 100 concurrent commands, and every
        # delivery of a channel's post checks its key at once.
        self.redis = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                os.environ["BENCH_REDIS_URL"], max_connections=100, timeout=None
            )
        )
        self.http = aiohttp.ClientSession()
        self.channels = await self.db_fetch(
            "SELECT id, telegram_id FROM channels WHERE status = 'active' ORDER BY id"
        )

    async def stop(self):
        await self.http.close()
        await self.bot.session.close()
        await self.redis.aclose()
        await self.pool.close()

    # -- timed database and Redis operations ---------------------------------

    async def db_fetch(self, sql, *params):
        t = time.perf_counter()
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql, *params)
        self.db_timer.add(time.perf_counter() - t)
        return rows

    async def db_execute(self, sql, *params):
        t = time.perf_counter()
        async with self.pool.acquire() as conn:
            await conn.execute(sql, *params)
        self.db_timer.add(time.perf_counter() - t)

    async def db_insert_commit(self, sql, *params):
        # The seed's per-row pattern: session.add(row); await session.commit().
        t = time.perf_counter()
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(sql, *params)
        self.db_timer.add(time.perf_counter() - t)

    async def redis_get(self, key):
        t = time.perf_counter()
        v = await self.redis.get(key)
        self.redis_timer.add(time.perf_counter() - t)
        return v

    async def redis_set(self, key, value, ttl):
        # SETEX, as the seed writes it (redis-py deprecates the setex() name).
        t = time.perf_counter()
        await self.redis.set(key, value, ex=ttl)
        self.redis_timer.add(time.perf_counter() - t)

    # -- the reader -----------------------------------------------------------

    async def get_history(self, chat_id, after):
        """Messages above `after`, oldest first (Pyrogram's get_chat_history)."""
        out = []
        while True:
            url = f"{self.args.control}/history"
            params = {"chat": str(chat_id), "after": str(after), "limit": "100"}
            async with self.http.get(url, params=params) as r:
                r.raise_for_status()
                page = await r.json()
            out.extend(page)
            if len(page) < 100:
                return out
            after = page[-1]["id"]

    @staticmethod
    def group_posts(messages):
        """Consecutive messages of one media group are one post (an album)."""
        posts = []
        for m in messages:
            group = m.get("media_group_id")
            if group and posts and posts[-1]["group"] == group:
                posts[-1]["ids"].append(m["id"])
            else:
                posts.append({"group": group, "ids": [m["id"]]})
        return posts

    # -- delivery ---------------------------------------------------------------

    async def forward_with_limit(self, source_chat, post, dest_id):
        ids = post["ids"]
        while True:
            try:
                async with self.semaphore:
                    if len(ids) > 1:
                        result = await self.bot.copy_messages(dest_id, source_chat, ids)
                        sent_id = result[0].message_id
                    else:
                        result = await self.bot.copy_message(dest_id, source_chat, ids[0])
                        sent_id = result.message_id
                    if self.args.send_pause > 0:
                        await asyncio.sleep(self.args.send_pause)  # 20 msg/sec
                return sent_id
            except TelegramRetryAfter as e:
                self.retried_429 += 1
                await asyncio.sleep(e.retry_after)

    async def deliver(self, channel, post, subscription_id, dest_id):
        key = f"{self.args.key_prefix}fwd:{subscription_id}:{post['ids'][0]}"
        if await self.redis_get(key):
            self.skipped += 1
            return
        try:
            sent_id = await self.forward_with_limit(channel["telegram_id"], post, dest_id)
        except Exception as e:  # noqa: BLE001 — one failed delivery is logged, not fatal
            self.failed += 1
            log.error("send to %s failed: %s", dest_id, e)
            return
        await self.db_insert_commit(
            "INSERT INTO forwarded_messages"
            " (subscription_id, channel_id, source_message_id, post_day,"
            "  destination_chat_id, sent_message_id, status)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'sent')",
            subscription_id,
            channel["id"],
            post["ids"][0],
            self.post_day,
            dest_id,
            sent_id,
        )
        await self.redis_set(key, "1", 86400)
        self.sent += 1

    async def process_channel(self, channel):
        rows = await self.db_fetch(
            "SELECT last_message_id FROM channels WHERE id = $1", channel["id"]
        )
        last = rows[0]["last_message_id"]
        messages = await self.get_history(channel["telegram_id"], last)
        if not messages:
            return 0
        # One eager-loading query for the channel's subscribers.
        subscriptions = await self.db_fetch(
            "SELECT s.id, d.chat_id FROM subscriptions s"
            " JOIN destinations d ON d.id = s.destination_id"
            " WHERE s.channel_id = $1 AND s.is_active AND d.is_active",
            channel["id"],
        )
        posts = self.group_posts(messages)
        for post in posts:
            results = await asyncio.gather(
                *(self.deliver(channel, post, s["id"], s["chat_id"]) for s in subscriptions),
                return_exceptions=True,
            )
            for r in results:
                if isinstance(r, Exception):
                    self.failed += 1
                    log.error("delivery error: %r", r)
            await self.db_execute(
                "UPDATE channels SET last_message_id = $2, last_polled_at = now() WHERE id = $1",
                channel["id"],
                post["ids"][-1],
            )
        return len(posts)

    async def process_all_channels(self):
        tasks = [self.process_channel(c) for c in self.channels]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        found = 0
        for channel, result in zip(self.channels, results):
            if isinstance(result, Exception):
                log.error("Channel %s error: %s", channel["id"], result)
            else:
                found += result
        return found


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bot-api", required=True)
    p.add_argument("--control", required=True)
    p.add_argument("--key-prefix", default="")
    p.add_argument("--expect", type=int, required=True, help="deliveries to wait for")
    p.add_argument("--idle-timeout", type=float, default=30.0)
    p.add_argument(
        "--send-pause",
        type=float,
        default=0.05,
        help="seconds slept after each send, inside the semaphore (the seed's 0.05; 0: none)",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    b = Baseline(args)
    await b.start()
    # One cycle over every channel with nothing new: the seed's poll cycle.
    t = time.perf_counter()
    await b.process_all_channels()
    empty_cycle_ms = (time.perf_counter() - t) * 1000.0
    print(json.dumps({"ready": True}), flush=True)
    started = time.perf_counter()
    cycles = []
    idle_since = time.perf_counter()
    while b.sent + b.failed < args.expect:
        t = time.perf_counter()
        found = await b.process_all_channels()
        cycles.append({"ms": (time.perf_counter() - t) * 1000.0, "posts": found})
        if found:
            idle_since = time.perf_counter()
        elif time.perf_counter() - idle_since > args.idle_timeout:
            log.error("nothing new for %.0f s; giving up", args.idle_timeout)
            break
        else:
            await asyncio.sleep(1.0)
    elapsed = time.perf_counter() - started
    await b.stop()
    busy = [c for c in cycles if c["posts"]]
    print(
        json.dumps(
            {
                "sent": b.sent,
                "failed": b.failed,
                "skipped": b.skipped,
                "retried_429": b.retried_429,
                "elapsed_s": elapsed,
                "cycles": len(cycles),
                "first_busy_cycle_ms": busy[0]["ms"] if busy else None,
                "empty_cycle_ms": empty_cycle_ms,
                "db_ops": b.db_timer.n,
                "db_avg_ms": b.db_timer.avg_ms(),
                "redis_ops": b.redis_timer.n,
                "redis_avg_ms": b.redis_timer.avg_ms(),
                # ru_maxrss is KiB on Linux.
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                "python": sys.version.split()[0],
                "send_pause_s": args.send_pause,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
