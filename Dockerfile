# syntax=docker/dockerfile:1
# Gatehouse: a static binary on distroless, running as non-root, fine with
# a read-only root filesystem. It writes to disk only where the policy says:
# SQLite stores (privacy regions, local accounts) and a development mail
# outbox; mount a volume there, or use PostgreSQL and SMTP.
#   docker build --build-arg VERSION=$(git describe --always) -t gatehouse .
#   docker run --read-only -p 8080:8080 -v $PWD/gatehouse.yaml:/etc/gatehouse/gatehouse.yaml:ro gatehouse
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false \
      -ldflags "-s -w -buildid= -X main.version=${VERSION}" \
      -o /out/gatehouse ./cmd/gatehouse

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
USER nonroot:nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve", "-c", "/etc/gatehouse/gatehouse.yaml"]
