# The image for docker-compose.yaml: the official Airflow image we test with, plus this provider.
# Build: docker compose build   (docker-compose.yaml builds it for every Airflow service and the simulator)
FROM apache/airflow:3.3.2-python3.11

# Install the provider from this checkout. Naming apache-airflow at the image's version keeps pip from
# upgrading or downgrading Airflow itself while it resolves the provider's dependencies.
COPY --chown=airflow:root pyproject.toml README.md /opt/airflow-provider-codat/
COPY --chown=airflow:root airflow_provider_codat /opt/airflow-provider-codat/airflow_provider_codat
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/airflow-provider-codat
