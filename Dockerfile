# Airflow image with airflow-sync-provider installed, built by docker-compose.yaml.
# Extends the official image as its docs describe ("Building the image" -> "Extending the image").
# Keep the tag in step with the apache-airflow pin in constraints.txt (tests/compose checks it).
FROM apache/airflow:3.3.2-python3.11

# Owned by airflow (GID 0, as the image expects) so pip can build the package in place.
COPY --chown=airflow:0 pyproject.toml constraints.txt README.md /opt/airflow-sync-provider/
COPY --chown=airflow:0 airflow_sync_provider /opt/airflow-sync-provider/airflow_sync_provider

# pip must run as the airflow user: the image's Python packages live in its ~/.local virtualenv.
# Naming apache-airflow==${AIRFLOW_VERSION} makes a dependency conflict fail the build instead of
# silently up- or downgrading the image's Airflow.
USER airflow
RUN cd /opt/airflow-sync-provider \
    && pip install --no-cache-dir -c constraints.txt "apache-airflow==${AIRFLOW_VERSION}" ".[statsd,celery,load]" \
    && rm -rf build ./*.egg-info
