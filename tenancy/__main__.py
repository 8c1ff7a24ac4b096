"""``python -m tenancy``: the same as the ``tenancy`` command."""

from __future__ import annotations

import sys

from tenancy.commands.main import main

sys.exit(main())
