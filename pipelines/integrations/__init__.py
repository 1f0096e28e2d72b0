"""Orchestrators: Dagster assets (`dagster_assets`) and an Airflow DAG (`airflow_dag`), each
importable where its orchestrator is installed."""
