"""``python -m cemssl_ik.cli``: the ``cemssl-ik`` command."""

import sys

from . import main

sys.exit(main())
