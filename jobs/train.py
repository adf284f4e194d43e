"""spark-submit entry point: fusionrec train."""

import sys

from fusionrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
