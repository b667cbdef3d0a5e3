# Stand-in for nats:<version>-alpine (see standins.sh): a static nats-server
# built from the module proxy at shared's version, and busybox for the
# compose healthcheck's wget. Like the official image, arguments starting
# with - go to nats-server.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY nats-server /usr/local/bin/nats-server
ENV PATH=/usr/local/bin:/bin
EXPOSE 4222 6222 8222
ENTRYPOINT ["nats-server"]
