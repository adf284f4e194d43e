"""spark-submit entry point: ``jobs/maintain.py --conf conf/cluster.yaml`` compacts and vacuums the lake."""

import sys

from fusionrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["maintain", *sys.argv[1:]]))
