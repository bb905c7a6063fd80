"""Rollout state: flag sources, the stage plan, gates, reconciliation and the audit log."""
