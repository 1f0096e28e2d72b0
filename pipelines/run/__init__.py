"""One load: source + target + pipeline, the run lock, recovery, the summary. No argparse, no
printing. Imports `sources/` and `pipelines/analysis` (the views a load refreshes)."""

from pipelines.run.destinations import existing_pipeline, make_pipeline
from pipelines.run.load import load
from pipelines.run.summary import TABLES, LoadSummary

__all__ = ["TABLES", "LoadSummary", "existing_pipeline", "load", "make_pipeline"]
