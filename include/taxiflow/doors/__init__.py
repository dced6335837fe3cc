"""Doors into taxiflow from outside Airflow's own: the Airflow 2 REST ``/api/v1``."""
