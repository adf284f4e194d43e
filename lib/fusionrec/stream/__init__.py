"""Real time: behaviour events from a stream, ingested with the batch rules, folded in per user.

Above the registry (it scores with the serving bundle), below the commands.
"""

__all__ = ["batch", "broker", "demo", "rescore", "run", "source"]
