"""The public API is what vllmbench exports; importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import vllmbench


def test_exports():
    assert set(vllmbench.__all__) == {"Conflict", "DependencyUnavailable", "NotFound", "RetryableError", "UserError",
                                      "ValidationFailed", "VllmbenchError", "__version__"}
    for name in vllmbench.__all__:
        assert hasattr(vllmbench, name)


@pytest.mark.parametrize("function", ["results", "sync"])
def test_function_modules_keep_heavy_libraries_off_the_import_path(function):
    code = (f"import sys, runpy; runpy.run_path('functions/{function}/main.py');"
            "heavy = [m for m in ('pymongo', 'kubernetes', 'mlflow', 'aiohttp', 'numpy', 'git', 'pydantic_settings',"
            " 'vllmbench.models.results', 'vllmbench.models.projects', 'vllmbench.store.results', 'gitops')"
            " if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
