"""The admin API: the rollout seen and changed over HTTP, by named token holders."""
