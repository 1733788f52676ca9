import sys

from genaitrace_check.cli import main

sys.exit(main())
