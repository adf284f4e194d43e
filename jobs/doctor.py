"""spark-submit entry point: check the stack on the cluster (``jobs/doctor.py --conf conf/cluster.yaml``)."""

import sys

from fusionrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["doctor", *sys.argv[1:]]))
