"""`python -m pipelines.cli`: the `openai-ft` command."""

from pipelines.cli.main import run

run()
