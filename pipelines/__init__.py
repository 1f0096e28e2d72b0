"""Pipelines and the `openai-ft` command."""
