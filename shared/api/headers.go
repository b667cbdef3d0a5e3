package api

// HeaderRequestID carries the gateway's request id over HTTP and NATS, so one
// id follows a request through every service's logs.
const HeaderRequestID = "X-Request-ID"
