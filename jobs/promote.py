"""spark-submit entry point: ``fusionrec promote`` (``jobs/promote.py --conf conf/cluster.yaml``)."""

import sys

from fusionrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["promote", *sys.argv[1:]]))
