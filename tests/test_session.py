"""Session settings that depend on where Spark runs (no JVM)."""

from __future__ import annotations

import os

from fusionrec.session import snapshot_partitions


def test_delta_log_replay_uses_at_most_one_partition_per_local_core():
    assert snapshot_partitions("local[2]", 8) == 2
    assert snapshot_partitions("local[4,2]", 8) == 4  # local[N, maxFailures]
    assert snapshot_partitions("local", 8) == 1
    assert snapshot_partitions("local[*]", 8) == min(8, os.cpu_count() or 1)
    assert snapshot_partitions("local[16]", 8) == 8  # never more than the shuffle partitions


def test_cluster_masters_keep_the_shuffle_partitions():
    assert snapshot_partitions("yarn", 64) == 64
    assert snapshot_partitions("spark://127.0.0.1:7077", 64) == 64
    assert snapshot_partitions("k8s://https://10.0.0.1:6443", 64) == 64
    assert snapshot_partitions(None, 64) == 64  # under spark-submit the master comes from it
