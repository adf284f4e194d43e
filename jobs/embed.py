"""spark-submit entry point: ``jobs/embed.py --conf conf/cluster.yaml [--no-features] [--report FILE]``."""

import sys

from fusionrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["embed", *sys.argv[1:]]))
