"""taxiflow: event-driven NYC taxi ingestion and self-service borough reports on Airflow 3."""

__version__ = "0.1.0"
