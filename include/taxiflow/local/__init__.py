"""Local tooling the Docker image does not need: the local Airflow stack and the demo data generator."""
