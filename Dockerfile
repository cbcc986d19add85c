# cloudhsm-local: the AWS CloudHSM v2 control plane in a container.
#
#   docker build -t cloudhsm-local .
#   docker run --rm -p 4599:4599 cloudhsm-local
#
# State lives in /data (mount a volume to keep it; add --in-memory to keep
# none). The admin API answers only loopback callers unless an admin token is
# set (CLOUDHSM_LOCAL_ADMIN_TOKEN); see docs/admin-api.md.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/cloudhsm-local ./cmd/cloudhsm-local \
 && mkdir -p /out/data

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/cloudhsm-local /usr/local/bin/cloudhsm-local
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# Defaults for the flags below, kept when `docker run IMAGE <flags>` replaces CMD.
ENV CLOUDHSM_LOCAL_LISTEN=0.0.0.0:4599 \
    CLOUDHSM_LOCAL_DATA_DIR=/data
EXPOSE 4599
# distroless has no shell or curl: the binary checks itself over loopback
# (it reads CLOUDHSM_LOCAL_ADMIN_TOKEN when a token is set).
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/cloudhsm-local", "admin", "health", "--endpoint", "http://127.0.0.1:4599", "--timeout", "4s"]
ENTRYPOINT ["/usr/local/bin/cloudhsm-local"]
CMD ["--listen", "0.0.0.0:4599", "--data-dir", "/data"]
