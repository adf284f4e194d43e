"""spark-submit entry point: fusionrec recommend."""

import sys

from fusionrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["recommend", *sys.argv[1:]]))
