"""Fifty sessions each running a turn at once: all must complete.

Reports wall time for the whole wave, turn latency (execute → terminal event) p50/p99, and the
resident memory of one idle sandbox (its supervisor, bwrap and harness processes), next to the
same run's raw baseline: a single turn's latency with nothing else running.

    .venv/bin/python bench/concurrency.py [--sessions 50] [--engine sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from bench_support import BenchServer, bench_server, percentile, summary_ms, user_line

COMMAND = "echo start; sleep 0.2; ls -la /workspace > /dev/null; echo done"


async def run_turn(server: BenchServer, thread_key: str) -> float:
    client = server.client
    started = time.perf_counter()
    answer = await client.post(
        f"/api/session/{thread_key}/execute", json={"input_lines": [user_line(COMMAND)]}
    )
    answer.raise_for_status()
    execution_id = answer.json()["execution_id"]
    cursor = 0
    while True:
        page = (
            await client.get(
                f"/api/session/{thread_key}/events",
                params={
                    "format": "json",
                    "after_event_id": cursor,
                    "execution_id": execution_id,
                    "wait": 10,
                },
            )
        ).json()
        for event in page["events"]:
            if event["event_type"] == "session.execution_completed":
                return time.perf_counter() - started
            if event["event_type"] in ("session.execution_failed", "session.execution_cancelled"):
                raise RuntimeError(f"{thread_key}: {event['payload']}")
        cursor = page["last_event_id"]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def idle_sandbox_rss_mib(sandboxes_dir: Path) -> list[float]:
    sizes = []
    for pid_file in sandboxes_dir.glob("*/supervisor.pid"):
        supervisor = int(pid_file.read_text())
        sizes.append(sum(rss_kib(pid) for pid in descendants(supervisor)) / 1024)
    return sizes


async def main(sessions: int, engine: str) -> None:
    async with bench_server(engine) as server:
        client = server.client
        await client.post("/api/session/bench:solo", json={"harness_type": "shell"})
        await run_turn(server, "bench:solo")
        solo = [await run_turn(server, "bench:solo") for _ in range(5)]
        keys = [f"bench:wave-{i}" for i in range(sessions)]
        await asyncio.gather(
            *(client.post(f"/api/session/{k}", json={"harness_type": "shell"}) for k in keys)
        )
        started = time.perf_counter()
        latencies = await asyncio.gather(*(run_turn(server, k) for k in keys))
        wall = time.perf_counter() - started
        await asyncio.sleep(0.5)
        memory = idle_sandbox_rss_mib(server.settings.sandboxes_dir)
    print(f"[{engine}] {sessions} concurrent cold turns: all completed in {wall:.2f} s wall")
    print(f"[{engine}] turn latency under load      {summary_ms(latencies)}")
    print(f"[{engine}] baseline: one reused turn    {summary_ms(solo)}")
    print(
        f"[{engine}] p99 under load / solo p50 = {percentile(latencies, 0.99) / percentile(solo, 0.5):.1f}x"
    )
    print(
        f"[{engine}] resident memory per idle sandbox: mean {statistics.fmean(memory):.1f} MiB, "
        f"max {max(memory):.1f} MiB over {len(memory)} sandboxes (supervisor + bwrap + harness)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--engine", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    asyncio.run(main(args.sessions, args.engine))
