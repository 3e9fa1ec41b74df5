"""The MLflow service's core (functions/mlflow_poll; docs/mlflow.md).

Pure: ``names`` (Kubernetes names of models and aliases), ``rules`` (rules in Git and
which versions they take), ``render`` (the files a version becomes), ``records`` (MLflow's
JSON as our records), ``signature`` (webhook signatures), ``verdicts`` (a verdict as tags).
Adapters and use cases: ``client`` (MLflow's REST API over HTTP; ``mlflow`` is never
imported), ``repository`` (the GitOps repository: rules in, commits out), ``poll`` (the
cursor poll), ``webhooks``, ``writeback`` (verdicts back to MLflow), ``service`` (built
from the settings), ``server`` (a real MLflow server for the tests and `make run`).
"""
