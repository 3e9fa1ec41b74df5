import pytest

from vllmbench.simulator import SimConfig, SimulatorProcess


@pytest.fixture(scope="module")
def sim():
    """A simulator with TTFT 20 ms and ITL 5 ms in its own process."""
    with SimulatorProcess(SimConfig(port=0, ttft_ms=20, itl_ms=5, models=("sim-model", "sim-model-b"))) as process:
        yield process
