"""`python -m posgen ...` (and `torchrun ... -m posgen train ...`): the `posgen` command."""
import sys

from posgen.cli import main

sys.exit(main())
