# taxiflow's Airflow image: the official Airflow 3.3.2 image plus taxiflow and its pinned dependencies.
# DAGs, plugins, data, logs and config are mounted by docker-compose.yaml, not baked in.
#
#   docker compose build          (tags taxiflow-airflow:${TAXIFLOW_VERSION})
FROM apache/airflow:3.3.2-python3.11

# The official image installs packages as the airflow user (pip refuses to run as root there).
USER airflow

# Exact pins from requirements.txt; naming apache-airflow==${AIRFLOW_VERSION} (set by the base image)
# keeps pip from up- or downgrading Airflow itself while it resolves them.
COPY --chown=airflow:root requirements.txt /opt/taxiflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/taxiflow/requirements.txt

# The taxiflow package itself; its dependencies came from requirements.txt above.
COPY --chown=airflow:root pyproject.toml README.md /opt/taxiflow/
COPY --chown=airflow:root include/ /opt/taxiflow/include/
RUN pip install --no-cache-dir --no-deps /opt/taxiflow
