"""spark-submit entry point: fusionrec evaluate."""

import sys

from fusionrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
