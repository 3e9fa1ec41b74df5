"""benchmark-mlflow (port 8003): poll the MLflow registry, write deployment YAML for new versions to Git.

Later issues fill in its routes; today it answers /health, /ready, /openapi.json and
/docs like every function, so that the stack, the proxy and the probes work.

functions-framework --target=handle --source=functions/mlflow_poll/main.py --port=8003
"""

from __future__ import annotations

from vllmbench.web import FunctionApp

app = FunctionApp("mlflow_poll", service="benchmark-mlflow", port=8003, title="benchmark-mlflow", description="Poll the MLflow model registry and write deployment YAML for new model versions to Git.")
handle = app.handle
