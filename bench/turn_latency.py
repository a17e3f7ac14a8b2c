"""Execute → first output event seen by an SSE client, for a reused and for a cold sandbox.

Each figure is printed with its ratio to raw bubblewrap start-up measured in the same run,
one baseline run after each turn (`bwrap … true`, and `bwrap … python3 -c pass` for the cold
case, which must also start a Python harness). Targets (issue 2): reused p50 under 30 ms; cold p50 within 3x of raw bwrap +
python start-up.

    .venv/bin/python bench/turn_latency.py [--turns 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from httpx_sse import aconnect_sse

from bench_support import (
    RAW_BWRAP,
    BenchServer,
    bench_server,
    percentile,
    summary_ms,
    time_command,
    user_line,
)

TERMINAL = (
    "session.execution_completed",
    "session.execution_failed",
    "session.execution_cancelled",
)


async def one_turn(
    server: BenchServer, thread_key: str, command: str, cursor: int
) -> tuple[float, int]:
    """Seconds from sending execute to the first output line arriving on an SSE stream opened
    after event `cursor`, and the id of the turn's terminal event (the next turn's cursor)."""
    client = server.client
    url = f"/api/session/{thread_key}/events?after_event_id={cursor}"
    terminal_id = cursor
    first_output: float | None = None
    async with aconnect_sse(client, "GET", url) as source:
        events = source.aiter_sse()
        started = time.perf_counter()
        answer = await client.post(
            f"/api/session/{thread_key}/execute", json={"input_lines": [user_line(command)]}
        )
        answer.raise_for_status()
        async for sse in events:
            if sse.event == "session.output.line" and first_output is None:
                first_output = time.perf_counter() - started
            if sse.event in TERMINAL:
                if sse.event != "session.execution_completed":
                    raise RuntimeError(f"turn ended with {sse.event}: {sse.data}")
                terminal_id = int(sse.id)
                break
    assert first_output is not None
    return first_output, terminal_id


async def main(turns: int) -> None:
    # Each baseline run is interleaved with the turns it is compared with, so both see the
    # same machine (load on a shared host drifts over a run).
    raw_true: list[float] = []
    raw_python: list[float] = []
    async with bench_server() as server:
        client = server.client
        await client.post("/api/session/bench:reused", json={"harness_type": "shell"})
        _, cursor = await one_turn(server, "bench:reused", "echo warm-up", 0)
        reused = []
        for _ in range(turns):
            latency, cursor = await one_turn(server, "bench:reused", "echo hi", cursor)
            reused.append(latency)
            raw_true += time_command([*RAW_BWRAP, "true"], 1)
        cold = []
        for index in range(turns):
            key = f"bench:cold-{index}"
            await client.post(f"/api/session/{key}", json={"harness_type": "shell"})
            cold.append((await one_turn(server, key, "echo hi", 0))[0])
            await client.delete(f"/api/session/{key}")
            raw_python += time_command([*RAW_BWRAP, "/usr/bin/python3", "-c", "pass"], 1)

    raw_true_p50 = percentile(raw_true, 0.5)
    raw_python_p50 = percentile(raw_python, 0.5)
    print(f"raw bwrap true                {summary_ms(raw_true)}")
    print(f"raw bwrap python3 -c pass     {summary_ms(raw_python)}")
    print(f"reused sandbox, first output  {summary_ms(reused)}")
    print(f"cold sandbox, first output    {summary_ms(cold)}")
    print(
        f"ratios: reused p50 / raw bwrap true = {percentile(reused, 0.5) / raw_true_p50:.2f}x; "
        f"cold p50 / raw bwrap python = {percentile(cold, 0.5) / raw_python_p50:.2f}x; "
        f"cold p99 / raw bwrap python = {percentile(cold, 0.99) / raw_python_p50:.2f}x"
    )
    print(
        f"targets: reused p50 < 30 ms -> {'met' if percentile(reused, 0.5) < 0.030 else 'MISSED'}; "
        f"cold p50 <= 3x raw -> {'met' if percentile(cold, 0.5) <= 3 * raw_python_p50 else 'MISSED'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    asyncio.run(main(parser.parse_args().turns))
