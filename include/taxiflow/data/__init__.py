"""The data layer: landing drops, TLC file formats, the warehouse, ingest and metrics. No Airflow imports."""
