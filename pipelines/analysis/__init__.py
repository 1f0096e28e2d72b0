"""What the loaded data answers: the views, `sql`, the report, the export. Takes a dlt
pipeline to read; imports nothing of `pipelines/run` or `pipelines/cli`."""
