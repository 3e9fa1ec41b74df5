"""benchmark-eval (port 8004): evaluations, one-off and scheduled, templates from Git, run lifecycle.

Later issues fill in its routes; today it answers /health, /ready, /openapi.json and
/docs like every function, so that the stack, the proxy and the probes work.

functions-framework --target=handle --source=functions/eval/main.py --port=8004
"""

from __future__ import annotations

from vllmbench.web import FunctionApp

app = FunctionApp("eval", service="benchmark-eval", port=8004, title="benchmark-eval", description="Evaluations: one-off and scheduled (PingSource), job templates from Git, run lifecycle.")
handle = app.handle
