# Stand-in for golang:1.26-bookworm (see standins.sh): Debian from
# debootstrap plus this machine's Go toolchain, copied into the context as go/.
ARG BASE
FROM ${BASE}
COPY go /usr/local/go
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
