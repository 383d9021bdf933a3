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
# A plain install: the template and the example brief are package data. The sources
# stay in this folder because prefect.yaml's entrypoints name their files.
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"
ENV HYPERLOCAL_OUTPUT_DIR=/opt/hyperlocal/output \
    HYPERLOCAL_CACHE_DIR=/opt/hyperlocal/.cache/hyperlocal
