import sys

from instrumentation.demo.app import main

sys.exit(main())
