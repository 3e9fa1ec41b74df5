"""Session-wide fixtures come from plugins under tests/fixtures."""

pytest_plugins = [
    "tests.fixtures.mongo",
    "tests.fixtures.functions",
    "tests.fixtures.cluster",
    "tests.fixtures.mlflow",
    "tests.fixtures.parallel",
]
