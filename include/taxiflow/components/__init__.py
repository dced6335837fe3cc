"""Airflow components built on the data layer: the TLC hook, operator and sensor, and the ingest gate."""
