"""Stopping a test service started by pid in its own process group: the library's function,
so the broker, the Hadoop and the standalone clusters all stop the same way."""

from __future__ import annotations

from fusionrec.stream.broker import stop_group

__all__ = ["stop_group"]
