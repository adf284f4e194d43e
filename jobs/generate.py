"""spark-submit entry point: ``jobs/generate.py --out DIR --events N --seed S``."""

import sys

from fusionrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
