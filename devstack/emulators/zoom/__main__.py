"""``python -m devstack.emulators.zoom [--port N]``: serve the Zoom emulator on loopback."""

import sys

from devstack.emulators.zoom.server import main

sys.exit(main())
