"""spark-submit entry point: ``fusionrec register`` (``jobs/register.py --conf conf/cluster.yaml``)."""

import sys

from fusionrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["register", *sys.argv[1:]]))
