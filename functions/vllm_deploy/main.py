"""benchmark-vllm (port 8005): vLLM servers: placement on GPUs, conflict detection and resolution, status.

Later issues fill in its routes; today it answers /health, /ready, /openapi.json and
/docs like every function, so that the stack, the proxy and the probes work.

functions-framework --target=handle --source=functions/vllm_deploy/main.py --port=8005
"""

from __future__ import annotations

from vllmbench.web import FunctionApp

app = FunctionApp("vllm_deploy", service="benchmark-vllm", port=8005, title="benchmark-vllm", description="vLLM servers: placement on GPUs, conflict detection and automatic resolution, status.")
handle = app.handle
