"""spark-submit entry point: the whole pipeline, e.g.
``spark-submit ... jobs/pipeline.py --conf conf/cluster.yaml --movielens /data/ml-latest-small``."""

import sys

from fusionrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))
