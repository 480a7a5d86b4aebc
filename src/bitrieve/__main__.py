import sys

from bitrieve.cli import main

sys.exit(main())
