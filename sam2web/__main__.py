import sys

from sam2web.cli import main

sys.exit(main())
