"""Real time: behaviour events from a stream, ingested with the batch rules, folded in per user."""
