"""``python -m devstack.emulators.google [--port N]``: serve the Google emulator on loopback."""

import sys

from devstack.emulators.google.server import main

sys.exit(main())
