"""The `openai-ft` command (`main`, and `run` as the console entry point). Nothing imports it:
it is the top of the house."""

from pipelines.cli.main import main, run

__all__ = ["main", "run"]
