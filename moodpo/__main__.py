import sys

from moodpo.cli import main

sys.exit(main())
