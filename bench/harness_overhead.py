"""Execute → the first model request reaching a fake model server, per harness, reused sandbox.

Baseline measured in the same run: execute → first output event of the `shell` harness seen by
an SSE client (its whole turn is a command, so that is its "first sign of work"). Each model
harness is measured on a server whose model endpoint is a loopback HTTPS fake (own CA, reached
through the egress proxy by a name override, the real key added at the edge), as in the tests.

    .venv/bin/python bench/harness_overhead.py [--turns 20] [--harness chiron codex ...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench_support import BenchServer, bench_server, percentile, summary_ms, user_line
from turn_latency import one_turn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.egress.tls_servers import TestCA
from tests.fake_models.anthropic_messages import AnthropicMessagesServer
from tests.fake_models.base import FakeModelServer, ModelRequest, Reply
from tests.fake_models.openai_chat import OpenAIChatServer
from tests.fake_models.responses import ResponsesServer

MODEL_HOST = "api.model.test"
# harness label -> (harness, provider, fake server class)
HARNESSES: dict[str, tuple[str, str, type[FakeModelServer]]] = {
    "chiron-openai": ("chiron", "openai", OpenAIChatServer),
    "chiron-anthropic": ("chiron", "anthropic", AnthropicMessagesServer),
    "codex": ("codex", "openai", ResponsesServer),
    "claudecode": ("claudecode", "anthropic", AnthropicMessagesServer),
}


async def _execute(server: BenchServer, thread_key: str, text: str) -> str:
    answer = await server.client.post(
        f"/api/session/{thread_key}/execute", json={"input_lines": [user_line(text)]}
    )
    answer.raise_for_status()
    return str(answer.json()["execution_id"])


async def _wait_done(server: BenchServer, thread_key: str, execution_id: str) -> None:
    while True:
        record = await server.client.get(f"/api/session/{thread_key}/executions/{execution_id}")
        status = record.json()["execution"]["status"]
        if status not in ("queued", "running"):
            if status != "completed":
                raise RuntimeError(f"turn ended {status}: {record.json()['execution']['error']}")
            return
        await asyncio.sleep(0.05)


async def shell_first_output(turns: int) -> list[float]:
    samples = []
    async with bench_server() as server:
        thread_key = "bench:shell"
        body = {"harness_type": "shell"}
        (await server.client.post(f"/api/session/{thread_key}", json=body)).raise_for_status()
        _, cursor = await one_turn(server, thread_key, "true", 0)
        for _ in range(turns):
            first, cursor = await one_turn(server, thread_key, "echo hi", cursor)
            samples.append(first)
    return samples


async def model_first_request(label: str, turns: int) -> list[float]:
    harness, provider, fake_class = HARNESSES[label]
    with tempfile.TemporaryDirectory(prefix="chiron-bench-ca-") as tmp:
        ca = TestCA(Path(tmp))
        arrivals: list[float] = []

        def answer(request: ModelRequest) -> Reply:
            arrivals.append(time.perf_counter())
            return Reply(text="ok")

        fake = fake_class(ca.server_context([MODEL_HOST]), default=Reply(text="ok"))
        await fake.start()
        base_url = f"https://{MODEL_HOST}" + ("/v1" if provider == "openai" else "")
        try:
            async with bench_server(
                model_provider=provider,
                model_base_url=base_url,
                model="fake-model",
                egress_upstream_ca=ca.cert_path,
                egress_resolve=f"{MODEL_HOST}=127.0.0.1:{fake.port}",
            ) as server:
                key = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
                header = "authorization" if provider == "openai" else "x-api-key"
                secret = {
                    "type": "http",
                    "value": "bench-key",
                    "hosts": [MODEL_HOST],
                    "match_headers": [header],
                }
                (await server.client.put(f"/api/secrets/{key}", json=secret)).raise_for_status()
                thread_key = f"bench:{label}"
                body = {"harness_type": harness}
                (
                    await server.client.post(f"/api/session/{thread_key}", json=body)
                ).raise_for_status()
                # The first turn starts the sandbox (and the CLI); later turns reuse both.
                await _wait_done(server, thread_key, await _execute(server, thread_key, "hello"))
                samples = []
                for index in range(turns):
                    fake.add(answer)
                    seen = len(arrivals)
                    started = time.perf_counter()
                    execution_id = await _execute(server, thread_key, f"say ok #{index}")
                    await _wait_done(server, thread_key, execution_id)
                    if len(arrivals) <= seen:
                        raise RuntimeError(f"{label}: the model was not asked")
                    samples.append(arrivals[seen] - started)
                return samples
        finally:
            await fake.stop()


async def main(turns: int, labels: list[str]) -> None:
    shell = await shell_first_output(turns)
    base = percentile(shell, 0.5)
    print(f"baseline shell harness, execute → first output (SSE): {summary_ms(shell)}")
    for label in labels:
        samples = await model_first_request(label, turns)
        ratio = percentile(samples, 0.5) / base
        print(f"{label:17} execute → first model request: {summary_ms(samples)}   "
              f"p50 = {ratio:5.1f}x shell")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--harness", nargs="*", default=list(HARNESSES), choices=list(HARNESSES))
    arguments = parser.parse_args()
    asyncio.run(main(arguments.turns, arguments.harness))
