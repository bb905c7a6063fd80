"""Alembic revisions, one file per schema change (a package so it ships when installed)."""
