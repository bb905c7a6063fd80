"""Shared test set-up. Fake upstreams live in tests/fakes; PostgreSQL in tests/pg.py."""
