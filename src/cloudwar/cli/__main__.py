import sys

from cloudwar.cli.main import main

sys.exit(main())
