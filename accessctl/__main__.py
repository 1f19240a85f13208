import sys

from accessctl.cli import main

sys.exit(main())
