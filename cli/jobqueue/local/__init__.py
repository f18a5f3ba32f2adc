"""Local mode: one JobQueue on one machine, scaled by the operator's policy."""
