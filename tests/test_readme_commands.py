"""The spark-submit command line in the README is the one the cluster test runs: both come
from :func:`_standalone.spark_submit_command` (placeholders where the README has them)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from _standalone import format_command, spark_submit_command

README = Path(__file__).resolve().parents[1] / "README.md"
#: The README's placeholders: any master, the jars of ``make jars``, the zip of ``make dist``.
PLACEHOLDERS = dict(master_url="spark://HOST:7077", jars=["$(ls .cache/jars/*.jar | paste -sd,)"],
                    py_files="dist/fusionrec.zip", job="jobs/doctor.py", job_args=["--conf", "conf/cluster.yaml"],
                    python=".venv/bin/python", submit="spark-submit", log4j="conf/log4j2.properties")


def standalone_block() -> str:
    """The first bash block after "Standalone" in the README's cluster section."""
    text = README.read_text()
    section = text[text.index("## Running on a cluster"):]
    match = re.search(r"^Standalone\b.*?^```bash\n(.*?)^```", section, re.S | re.M)
    assert match, "README: no ```bash block after 'Standalone' in 'Running on a cluster'"
    return match.group(1).rstrip("\n")


def test_readme_standalone_command_is_the_tested_one():
    expected = spark_submit_command(**PLACEHOLDERS)
    block = standalone_block()
    assert block == format_command(expected, wrap=True)
    assert shlex.split(block.replace("\\\n", " ")) == expected  # what a shell passes to spark-submit



#: The S3 command: the jars of ``make jars-s3`` first, then those of ``make jars``.
S3_PLACEHOLDERS = dict(PLACEHOLDERS, jars=["$(ls .cache/jars-s3/*.jar .cache/jars/*.jar | paste -sd,)"],
                       job="jobs/pipeline.py", job_args=["--dir", "/shared/raw", "--conf", "conf/cluster-s3.yaml"])


def test_readme_s3_command_is_the_tested_one():
    text = README.read_text()
    section = text[text.index("### Object stores (S3)"):]
    match = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M)
    assert match, "README: no ```bash block in 'Object stores (S3)'"
    block = match.group(1).rstrip("\n")
    expected = spark_submit_command(**S3_PLACEHOLDERS)
    assert block == format_command(expected, wrap=True)
    assert shlex.split(block.replace("\\\n", " ")) == expected


#: The README's YARN placeholders: the pipeline on inputs and a lake in HDFS.
YARN_PLACEHOLDERS = dict(
    archive="hdfs:///apps/spark/spark-jars-3.5.8.zip",
    jars=["$(ls .cache/jars/*.jar | sed 's|^.cache/jars/|hdfs:///apps/fusionrec/jars/|' | paste -sd,)"],
    py_files="dist/fusionrec.zip",
    job="jobs/pipeline.py", python=".venv/bin/python", submit="spark-submit", log4j=PLACEHOLDERS["log4j"],
    job_args=["--movielens", "hdfs:///data/ml-latest-small", "--conf", "conf/cluster.yaml",
              "--set", "lake.root=hdfs:///fusionrec/lake", "--set", "spark.checkpoint_dir=hdfs:///fusionrec/checkpoints"])


def yarn_block() -> str:
    """The spark-submit of the first bash block after "YARN" in the README's cluster section
    (the block starts by pointing HADOOP_CONF_DIR at the cluster's client configuration)."""
    text = README.read_text()
    section = text[text.index("## Running on a cluster"):]
    match = re.search(r"^YARN\b.*?^```bash\n(.*?)^```", section, re.S | re.M)
    assert match, "README: no ```bash block after 'YARN' in 'Running on a cluster'"
    first, rest = match.group(1).split("\n", 1)
    assert first.startswith("export HADOOP_CONF_DIR=")
    return rest.rstrip("\n")


def test_readme_yarn_command_is_the_tested_one():
    from _hadoop import yarn_submit_command

    expected = yarn_submit_command(**YARN_PLACEHOLDERS)
    block = yarn_block()
    assert block == format_command(expected, wrap=True)
    assert shlex.split(block.replace("\\\n", " ")) == expected


def test_readme_lists_every_command_as_the_cli_describes_it():
    """The README's command table is ``fusionrec --help``'s list: every command, in its order,
    with its help text."""
    from fusionrec.cli import COMMANDS, command_help

    text = README.read_text()
    section = text[text.index("## Commands"):]
    section = section[:section.index("\n## ", 1)]
    rows = re.findall(r"^\| `([a-z-]+)` \| (.*) \|$", section, re.M)
    assert rows == [(name, command_help(name).replace("``", "")) for name in COMMANDS]
