"""An OpenAI-compatible sandbox for the fine-tuning read endpoints (demo, tests, benchmarks).

It imports nothing from `sources/`: it stands for the real API, not for our code.
"""

from fake_openai.server import SandboxServer, start_sandbox
from fake_openai.world import FineTuningWorld

__all__ = ["FineTuningWorld", "SandboxServer", "start_sandbox"]
