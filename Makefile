# One command set for people and CI.
.PHONY: setup run test lint bench

setup:
	scripts/setup

run: setup
	.venv/bin/chiron up --demo

test:
	scripts/test

lint: setup
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

bench: setup
	.venv/bin/python bench/turn_latency.py
	.venv/bin/python bench/event_throughput.py
	.venv/bin/python bench/concurrency.py
	.venv/bin/python bench/proxy_overhead.py
	.venv/bin/python bench/harness_overhead.py
