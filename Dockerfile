# One image for all six functions; VLLMBENCH_FUNCTION picks the handler at run time
# (results, sync, deploy, mlflow_poll, eval, vllm_deploy).
#   docker build -t ghcr.io/vllmbench/vllmbench-functions:0.1.0 .
#   docker run -e VLLMBENCH_FUNCTION=results -p 8000:8080 ghcr.io/vllmbench/vllmbench-functions:0.1.0
# Optional extras: --build-arg EXTRAS=kube,... (none for MLflow: the MLflow service speaks its REST API).
FROM python:3.11-slim AS build
ARG EXTRAS=kube
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY vllmbench ./vllmbench
COPY functions ./functions
COPY gitops ./gitops
COPY eventing ./eventing
RUN pip install ".[${EXTRAS}]" \
 && mkdir -p /app && cp -r functions /app/functions \
 # Imports are part of cold start: ship the bytecode, never compile at run time.
 && python -m compileall -q -j 0 /opt/venv/lib /app/functions

FROM python:3.11-slim
# git: the sync, deploy, mlflow_poll, eval and vllm_deploy functions clone and push the
# GitOps repository.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin vllmbench
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PORT=8080 \
    VLLMBENCH_FUNCTION=results \
    VLLMBENCH_SECRETS_DIR=/var/run/secrets/vllmbench
WORKDIR /app
USER 10001:10001
EXPOSE 8080
CMD ["sh", "-c", "exec functions-framework --target=handle --source=functions/${VLLMBENCH_FUNCTION}/main.py --port=${PORT}"]
