import sys

from caffepipe.cli import main

sys.exit(main())
