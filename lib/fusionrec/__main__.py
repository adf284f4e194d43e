import sys

from fusionrec.cli import main

sys.exit(main())
