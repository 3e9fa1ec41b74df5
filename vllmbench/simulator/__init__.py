"""A vLLM simulator: vLLM's OpenAI-compatible routes and metrics with known latencies.

Start it in this process (:class:`SimulatorThread`), as a child process
(:class:`SimulatorProcess`), or in the foreground (``vllmbench simulate``). Its record of
each request (``GET /_sim/requests``) is the truth a client is checked against.
"""

from vllmbench.simulator.config import SimConfig
from vllmbench.simulator.run import SimulatorProcess, SimulatorThread, serve_forever

__all__ = ["SimConfig", "SimulatorProcess", "SimulatorThread", "serve_forever"]
