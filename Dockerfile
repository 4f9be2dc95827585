# The portal image used by docker-compose.yml (production-style: PostgreSQL + S3 + TLS proxy in front).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 portal
WORKDIR /app
COPY pyproject.toml README.md ./
COPY portal ./portal
COPY storage ./storage
COPY reviewers ./reviewers
RUN pip install . && mkdir -p /var/lib/portal && chown portal /var/lib/portal
# The OHIF viewer, verified against its pinned hash, baked into the image (read-only at run time).
ENV PORTAL_OHIF_DIR=/opt/ohif
RUN portal ohif install
USER portal
EXPOSE 8000
# Migrations are idempotent: every start brings the schema to head, then serves.
CMD ["sh", "-c", "portal init && portal serve"]
