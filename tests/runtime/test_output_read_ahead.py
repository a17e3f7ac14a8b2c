"""Output read ahead of the pump stays bounded in memory, in lines and in bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from chiron.runtime.stdout_pump import BATCH_BYTES, OutputReadAhead
from chiron.sandbox.backend import OutputLine

MIB = 1 << 20


async def huge_lines(count: int, produced: list[int]) -> AsyncIterator[list[OutputLine]]:
    for index in range(count):
        produced.append(index)
        yield [OutputLine(b"x" * MIB, (index + 1) * (MIB + 1), None)]


async def test_a_flood_of_huge_lines_is_not_read_far_ahead_of_the_database() -> None:
    produced: list[int] = []
    output = OutputReadAhead(huge_lines(500, produced), name="test-reader")
    try:
        await asyncio.sleep(0.2)  # the pump is busy elsewhere: nobody takes anything
        assert 0 < len(produced) <= 40, "read ahead without bound"
        batch, ended = await output.take(2000, BATCH_BYTES)
        assert len(batch) == BATCH_BYTES // MIB and not ended
        assert [line.end_offset for line in batch] == [(i + 1) * (MIB + 1) for i in range(8)]
        # Taking makes room: reading goes on, still bounded.
        await asyncio.sleep(0.1)
        assert len(produced) <= 40 + len(batch)
    finally:
        await output.close()


async def test_one_line_over_the_byte_bound_still_makes_a_batch() -> None:
    async def one_line() -> AsyncIterator[list[OutputLine]]:
        yield [OutputLine(b"y" * (2 * MIB), 2 * MIB + 1, None)]

    output = OutputReadAhead(one_line(), name="test-reader")
    batch, _ = await output.take(2000, MIB)
    assert [len(line.data) for line in batch] == [2 * MIB]
    assert await output.take(2000, MIB) == ([], True)
    await output.close()
