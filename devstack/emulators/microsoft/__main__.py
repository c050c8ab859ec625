"""``python -m devstack.emulators.microsoft [--port N]``: serve the Microsoft emulator on loopback."""

import sys

from devstack.emulators.microsoft.server import main

sys.exit(main())
