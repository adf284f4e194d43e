"""spark-submit entry point: ``jobs/ingest.py --conf conf/cluster.yaml --source amazon --path DIR``."""

import sys

from fusionrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
