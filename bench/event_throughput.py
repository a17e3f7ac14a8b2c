"""Event throughput: a harness printing 100,000 short lines, on SQLite and on PostgreSQL.

Reports output events stored per second (from the stored events' own timestamps) and delivered
per second to 10 concurrent SSE clients, each as a ratio to raw batched inserts of the same
number of rows into the same database (same driver, batches the size of the pump's) measured
in the same run: rows handed to the driver's executemany (the baseline of the target), the
same through SQLAlchemy Core, and for reference one set-based statement per batch (the shape
the server itself uses: json_each on SQLite, unnest on PostgreSQL).
Target (issue 2): at least 20,000 lines/s stored and >= 50% of the raw insert rate.

    .venv/bin/python bench/event_throughput.py [--lines 100000] [--clients 10] [--engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import datetime

import sqlalchemy as sa

from bench_support import BenchServer, bench_server, user_line
from chiron.runtime.stdout_pump import BATCH_LINES
from chiron.store.engine import Store
from chiron.store.tables import events, sessions
from chiron.store.types import utcnow

TERMINAL = (
    "session.execution_completed",
    "session.execution_failed",
    "session.execution_cancelled",
)


async def raw_insert_rate(database_url: str, rows: int, *, shape: str, key: str) -> float:
    """Rows per second for plain batched INSERTs into the events table.

    `shape`: "driver", rows handed straight to the driver's executemany (the floor of what
    the database costs per row); "core", the same rows through SQLAlchemy Core, the layer an
    application on this stack writes through; "set", one statement per batch expanding an
    array parameter into rows.
    """
    store = Store(database_url)
    now = utcnow()
    async with store.write() as conn:
        await conn.execute(
            sa.insert(sessions).values(
                thread_key=key, status="idle", harness_type="shell",
                principal_id="prn_raw", metadata={}, last_event_id=0,
                created_at=now, updated_at=now, last_active_at=now,
            )
        )  # fmt: skip
    line = '{"method":"item/commandExecution/outputDelta","params":{"delta":"12345\\n"}}'
    sqlite = store.dialect == "sqlite"
    created = now.replace(tzinfo=None).isoformat(" ") if sqlite else now
    head = (
        "INSERT INTO events (thread_key, event_id, execution_id, event_type, payload, created_at)"
    )
    if sqlite:
        per_row = head + " VALUES (?, ?, ?, ?, ?, ?)"
        per_set = head + " SELECT ?, ? + key, ?, ?, value, ? FROM json_each(?)"
    else:
        per_row = head + " VALUES ($1, $2, $3, $4, $5, $6)"
        per_set = (
            head + " SELECT $1, $2 + t.ord - 1, $3, $4, t.payload, $5"
            " FROM unnest($6::text[]) WITH ORDINALITY AS t(payload, ord)"
        )
    started = time.perf_counter()
    for first in range(1, rows + 1, BATCH_LINES):
        ids = range(first, min(first + BATCH_LINES, rows + 1))
        async with store.write() as conn:
            if shape == "core":
                await conn.execute(
                    sa.insert(events),
                    [
                        {"thread_key": key, "event_id": i, "execution_id": "exe_raw",
                         "event_type": "session.output.line", "payload": line, "created_at": now}
                        for i in ids
                    ],
                )  # fmt: skip
            elif shape == "set":
                payloads = [line] * len(ids)
                await conn.exec_driver_sql(
                    per_set,
                    (key, first, "exe_raw", "session.output.line", created,
                     json.dumps(payloads) if sqlite else payloads),
                )  # fmt: skip
            else:
                await conn.exec_driver_sql(
                    per_row,
                    [(key, i, "exe_raw", "session.output.line", line, created) for i in ids],
                )
    elapsed = time.perf_counter() - started
    async with store.write() as conn:
        await conn.execute(
            sa.update(sessions).where(sessions.c.thread_key == key).values(last_event_id=rows)
        )
    await store.dispose()
    return rows / elapsed


async def sse_client(server: BenchServer, url: str, ready: asyncio.Event) -> tuple[int, float]:
    """Count output lines until the terminal event; returns (lines, seconds first→last).

    Counts frames in the raw byte stream rather than parsing each one, so the figure measures
    the server's delivery, not this client's parser.
    """
    marker = b"event: session.output.line\n"
    count = 0
    first: float | None = None
    tail = b""
    async with server.client.stream("GET", url) as response:
        ready.set()
        async for chunk in response.aiter_bytes():
            data = tail + chunk
            found = data.count(marker)
            if found and first is None:
                first = time.perf_counter()
            count += found
            if any(t.encode() in data for t in TERMINAL):
                break
            tail = data[-len(marker) :]
            # A marker split across chunks is counted once, in the joined data.
            count -= tail.count(marker)
    assert first is not None
    return count, time.perf_counter() - first


async def run_engine(engine: str, lines: int, clients: int) -> None:
    async with bench_server(engine) as server:
        client = server.client
        await client.post("/api/session/bench:flood", json={"harness_type": "shell"})
        await client.post(
            "/api/session/bench:flood/execute", json={"input_lines": [user_line("true")]}
        )
        await asyncio.sleep(1.0)
        cursor = (
            await client.get(
                "/api/session/bench:flood/events", params={"format": "json", "wait": 0}
            )
        ).json()["last_event_id"]
        url = f"/api/session/bench:flood/events?after_event_id={cursor}"
        readies = [asyncio.Event() for _ in range(clients)]
        readers = [asyncio.create_task(sse_client(server, url, r)) for r in readies]
        await asyncio.gather(*(r.wait() for r in readies))
        answer = await client.post(
            "/api/session/bench:flood/execute",
            json={"input_lines": [user_line(f"seq 1 {lines}")]},
        )
        execution_id = answer.json()["execution_id"]
        delivered = await asyncio.gather(*readers)
        stored_rate = await stored_lines_per_second(server, execution_id)
        raw_rate = await raw_insert_rate(server.database_url, lines, shape="driver", key="b:raw")
        core_rate = await raw_insert_rate(server.database_url, lines, shape="core", key="b:core")
        set_rate = await raw_insert_rate(server.database_url, lines, shape="set", key="b:set")
    delivered_rates = [count / seconds for count, seconds in delivered]
    per_client = min(delivered_rates)
    print(f"[{engine}] raw batched inserts, driver  {raw_rate:10,.0f} rows/s")
    print(f"[{engine}] raw batched inserts, Core    {core_rate:10,.0f} rows/s")
    print(f"[{engine}] raw set-based inserts        {set_rate:10,.0f} rows/s")
    print(
        f"[{engine}] output lines stored           {stored_rate:10,.0f} lines/s   "
        f"({stored_rate / raw_rate:.0%} of driver rate, {stored_rate / core_rate:.0%} of Core, "
        f"{stored_rate / set_rate:.0%} of set-based)"
    )
    print(
        f"[{engine}] delivered per SSE client (x{clients}) {per_client:10,.0f} events/s slowest, "
        f"{sum(delivered_rates):,.0f} events/s total   ({per_client / raw_rate:.0%} of raw per client)"
    )
    print(
        f"[{engine}] target >= 20,000 lines/s: {'met' if stored_rate >= 20_000 else 'MISSED'}; "
        f">= 50% of raw: {'met' if stored_rate >= raw_rate / 2 else 'MISSED'} (driver), "
        f"{'met' if stored_rate >= core_rate / 2 else 'MISSED'} (Core)"
    )


async def stored_lines_per_second(server: BenchServer, execution_id: str) -> float:
    store = Store(server.database_url)
    async with store.read() as conn:
        row = (
            await conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.min(events.c.created_at),
                    sa.func.max(events.c.created_at),
                ).where(
                    events.c.execution_id == execution_id,
                    events.c.event_type == "session.output.line",
                )
            )
        ).one()
    await store.dispose()
    count, first, last = row
    first_at = first if isinstance(first, datetime) else datetime.fromisoformat(first)
    last_at = last if isinstance(last, datetime) else datetime.fromisoformat(last)
    return float(count) / max((last_at - first_at).total_seconds(), 1e-6)


async def main(lines: int, clients: int, engines: list[str]) -> None:
    for engine in engines:
        await run_engine(engine, lines, clients)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    asyncio.run(main(args.lines, args.clients, args.engines.split(",")))
