"""The store: tables, queries and migrations, on SQLite (default) or PostgreSQL.

Owns: the schema (`tables.py`), engines and dialect differences (`engine.py`), Alembic
migrations, and one module of query functions per table. Query functions take a connection
and never commit: the caller owns the transaction. Must not import anything above it
(runtime, api, sandbox).
"""
