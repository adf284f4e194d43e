"""A Kafka broker for the stream tests (loaded with ``pytest_plugins``), and a producer.

The broker is :class:`fusionrec.stream.broker.KafkaBroker`: KRaft mode, 127.0.0.1 only,
its own JVM, started and stopped by pid. Messages are produced with Spark's Kafka sink,
so the tests need no Python Kafka client.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fusionrec.stream.broker import KafkaBroker, kafka_jars_dir

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def kafka_broker(tmp_path: Path):
    with KafkaBroker(kafka_jars_dir(PROJECT), tmp_path / "kafka") as broker:
        yield broker


def produce(spark, bootstrap_servers: str, topic: str, lines: list[str]) -> None:
    """Send ``lines`` (one message each, in order per partition) to ``topic``."""
    (spark.createDataFrame([(line,) for line in lines], "value STRING").coalesce(1)
     .write.format("kafka").option("kafka.bootstrap.servers", bootstrap_servers).option("topic", topic).save())
