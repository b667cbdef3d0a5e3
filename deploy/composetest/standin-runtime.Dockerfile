# Stand-in for gcr.io/distroless/static-debian12:nonroot (see standins.sh):
# nothing but /etc/passwd and /etc/group (root, nonroot 65532), CA
# certificates and zoneinfo, taken from the Debian stand-in.
ARG BASE
FROM ${BASE} AS debian
RUN mkdir -p /out/etc/ssl/certs /out/tmp \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /out/etc/passwd \
 && printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > /out/etc/group \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
 && chmod 1777 /out/tmp

FROM scratch
COPY --from=debian /out/ /
COPY --from=debian /usr/share/zoneinfo /usr/share/zoneinfo
USER 65532:65532
WORKDIR /home/nonroot
