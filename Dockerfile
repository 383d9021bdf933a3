# The image the Docker and Kubernetes work pools of prefect.yaml run.
# Builtin backends only; add extras for in-process models, e.g.
#   docker build --build-arg EXTRAS=diffusers -t hyperlocal:latest .
FROM python:3.11-slim
ARG EXTRAS=""
WORKDIR /opt/hyperlocal
COPY pyproject.toml README.md LICENSE ./
COPY hyperlocal hyperlocal
COPY backends backends
COPY tasks tasks
COPY flows flows
COPY templates templates
COPY examples examples
# Editable: the template and examples are read from this folder.
RUN pip install --no-cache-dir -e ".${EXTRAS:+[$EXTRAS]}"
ENV HYPERLOCAL_OUTPUT_DIR=/opt/hyperlocal/output \
    HYPERLOCAL_CACHE_DIR=/opt/hyperlocal/.cache/hyperlocal
