"""vllmbench: benchmark vLLM model servers on Kubernetes.

The public API is what this module exports (checked by ``tests/unit/test_public_api.py``).
Importing it is cheap: nothing heavy is imported here.
"""

from vllmbench.errors import (
    Conflict,
    DependencyUnavailable,
    NotFound,
    RetryableError,
    UserError,
    ValidationFailed,
    VllmbenchError,
)

__version__ = "0.1.0"

__all__ = [
    "Conflict",
    "DependencyUnavailable",
    "NotFound",
    "RetryableError",
    "UserError",
    "ValidationFailed",
    "VllmbenchError",
    "__version__",
]
