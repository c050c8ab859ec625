"""One package per Lambda function; each exposes ``handler.lambda_handler``.

Cold start (issue 13): in a Lambda container (``LAMBDA_TASK_ROOT`` is set) the cyclic garbage
collector is paused from here — the first code the runtime runs, since a handler is
``functions.<name>.handler`` — until the handler module has imported everything and calls
:func:`init_done` (its last statement; a test checks every handler). Importing builds tens of
thousands of long-lived objects (modules, classes, pydantic validators, clients); the collector's
passes over them during import free nothing and cost about 35 ms of the Stripe webhook's ~285 ms
cold import (``python -m bench imports``, bench/README.md). :func:`init_done` then freezes what
the import built (``gc.freeze``: moved to the permanent generation and never scanned again, so the
collections during requests are shorter too) and turns the collector back on.

Outside Lambda (tests, the local stack, tools) nothing changes. Reference counting frees acyclic
garbage all along; only cycle detection waits until the end of the import.
"""

import gc
import os

_paused = bool(os.environ.get("LAMBDA_TASK_ROOT")) and gc.isenabled()
if _paused:
    gc.disable()


def init_done() -> None:
    """End of a handler module's import: resume the collector paused above (once; a no-op elsewhere)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
