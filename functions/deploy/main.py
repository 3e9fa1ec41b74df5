"""benchmark-deployer (port 8002): apply YAML through GitOps, reconcile Git to the cluster, job logs, terminal.

Later issues fill in its routes; today it answers /health, /ready, /openapi.json and
/docs like every function, so that the stack, the proxy and the probes work.

functions-framework --target=handle --source=functions/deploy/main.py --port=8002
"""

from __future__ import annotations

from vllmbench.web import FunctionApp

app = FunctionApp("deploy", service="benchmark-deployer", port=8002, title="benchmark-deployer", description="Apply YAML through GitOps, reconcile Git to the cluster, job logs and terminal.")
handle = app.handle
