# syntax=docker/dockerfile:1
# OTJ Helper: one image for every process (app web, app worker, app all,
# and the operator commands). Build: docker build -t otj .
#
# Stage 1 builds a static binary: the SQLite driver is pure Go, so no cgo
# and no C library is needed at run time.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/app ./cmd/app \
 && mkdir -p /out/data

# Stage 2 holds the binary alone, run as an unprivileged user (distroless's
# nonroot, uid 65532). /data is for app all's SQLite database and embedded
# NATS store; app web and app worker with DATABASE_URL and NATS_URL write
# nothing to disk.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/app /usr/local/bin/app
COPY --from=build --chown=65532:65532 /out/data /data
ENV OTJ_DATA_DIR=/data HOST=0.0.0.0
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["app"]
CMD ["all"]
