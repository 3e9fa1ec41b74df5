"""The MLflow service's cold start: nothing heavy on its import path, and never `mlflow`."""

from __future__ import annotations

import subprocess
import sys


def test_the_function_module_loads_no_client_store_or_git():
    # (flask, and with it jinja2, is the factory's: every function loads it)
    code = ("import sys, runpy; runpy.run_path('functions/mlflow_poll/main.py');"
            "heavy = [m for m in ('mlflow', 'pymongo', 'git', 'gitops', 'yaml', 'pydantic_settings',"
            " 'urllib.request', 'vllmbench.mlflow', 'vllmbench.models.mlflow', 'vllmbench.store.mlflow')"
            " if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

