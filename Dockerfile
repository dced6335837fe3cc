# taxiflow's Airflow image: the official Airflow 3.3.2 image plus taxiflow and its pinned dependencies,
# the DAG files and the plugins. Nothing is mounted from the host (docker-compose.yaml): every host
# that runs this image runs the same code, and the data and task logs live in object storage.
#
#   docker compose build          (airflow-init builds it; tags taxiflow-airflow:${TAXIFLOW_VERSION})
#
# AIRFLOW_IMAGE is the official image unless .env names a stand-in (scripts/standin-images/).
# Extra CA certificates (PEM, *.crt) in docker/ca-certificates/ are trusted by pip during the build and
# by the running tasks (requests, curl): behind an HTTPS-intercepting proxy, put its CA there.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

USER root
COPY docker/ca-certificates/ /usr/local/share/ca-certificates/taxiflow/
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# The official image installs packages as the airflow user (pip refuses to run as root there).
USER airflow

# Exact pins from requirements.txt; naming apache-airflow==${AIRFLOW_VERSION} (set by the base image)
# keeps pip from up- or downgrading Airflow itself while it resolves them.
COPY --chown=airflow:root requirements.txt /opt/taxiflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/taxiflow/requirements.txt

# The taxiflow package itself (without taxiflow.local, the `make run` tooling the image never
# uses); its dependencies came from requirements.txt above.
COPY --chown=airflow:root pyproject.toml README.md /opt/taxiflow/
COPY --chown=airflow:root include/ /opt/taxiflow/include/
RUN pip install --no-cache-dir --no-deps /opt/taxiflow

# Health checks that do not import Airflow (docker-compose.yaml runs them every 10 s).
COPY --chown=airflow:root docker/healthcheck.py /opt/taxiflow/healthcheck.py

# The start-time check of the bucket that airflow-init runs (docker/check_storage.py).
COPY --chown=airflow:root docker/check_storage.py /opt/taxiflow/check_storage.py
COPY --chown=airflow:root docker/run_notes_user.py /opt/taxiflow/run_notes_user.py

# DAG files and plugins last: they change most often, so a change rebuilds only these layers.
COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
