"""The one way to build a function: routes and event handlers on a :class:`FunctionApp`.

A function module is only its routes and handlers; everything else (JSON errors,
auth, body limits, CloudEvents, dedupe, /health, /ready, /openapi.json, /docs, logs)
is here, once.
"""

from vllmbench.web.app import FunctionApp
from vllmbench.web.context import Context, Reply

__all__ = ["Context", "FunctionApp", "Reply"]
