package envconfig

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// MaxNATSReplicas is JetStream's own limit on a stream's replicas.
const MaxNATSReplicas = 5

// The checks every service makes of the variables they share, with one
// wording: each error names its variable.

// CheckNATS checks WXLOGIN_NATS_URL and WXLOGIN_NATS_REPLICAS, the
// replicas of the JetStream assets a service creates.
func CheckNATS(url string, replicas int) error {
	if strings.TrimSpace(url) == "" {
		return errors.New("WXLOGIN_NATS_URL: must not be empty")
	}
	if replicas < 1 || replicas > MaxNATSReplicas {
		return fmt.Errorf("WXLOGIN_NATS_REPLICAS: %d is outside 1..%d (1 for a single NATS server, 3 for a cluster)", replicas, MaxNATSReplicas)
	}
	return nil
}

// CheckMetricsAddr checks WXLOGIN_METRICS_ADDR (empty: no ops listener).
func CheckMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return fmt.Errorf("WXLOGIN_METRICS_ADDR: %q is not a host:port address (e.g. \":9100\")", addr)
	}
	return nil
}
