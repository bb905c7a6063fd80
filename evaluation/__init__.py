"""Pure scoring: per-pair metrics, statistics, the LLM judge, cost and reports.

Everything here takes plain sequences or numpy columns and returns frozen values.
Nothing touches a database; only ``evaluation.judge`` makes network calls.
"""
