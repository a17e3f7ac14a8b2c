"""Tests of the `chiron` command line (mirrors src/chiron/cli)."""
