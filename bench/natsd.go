package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsd is `bench natsd`: a nats-server in a process of its own, so that
// its CPU is measured apart from the load generator's. With -c it runs the
// project's deploy/nats/nats.conf (the four users, their passwords from
// the environment) as `nats-server -c nats.conf -p port -sd dir` would;
// without, a plain server with no users and no JetStream (the bare chain).
// It stops on SIGINT or SIGTERM (nats-server's own signal handling).
func natsd(args []string) error {
	fs := flag.NewFlagSet("natsd", flag.ContinueOnError)
	conf := fs.String("c", "", "nats-server config file")
	port := fs.Int("p", 4222, "port")
	dir := fs.String("sd", "", "JetStream store directory")
	sync := fs.String("sync", "", "override the config's JetStream sync_interval: always, or a duration (the server's default is 2m)")
	prof := fs.Int("prof", 0, "serve /debug/pprof on 127.0.0.1:PORT (the bench's -profile)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := &server.Options{}
	if *conf != "" {
		var err error
		if opts, err = server.ProcessConfigFile(*conf); err != nil {
			return fmt.Errorf("%s: %w", *conf, err)
		}
		opts.StoreDir = *dir
	}
	switch *sync {
	case "":
	case "always":
		opts.SyncAlways = true
	default:
		d, err := time.ParseDuration(*sync)
		if err != nil || d <= 0 {
			return fmt.Errorf("-sync %q: always or a positive duration", *sync)
		}
		opts.SyncAlways, opts.SyncInterval = false, d
	}
	opts.ProfPort = *prof
	opts.Host, opts.Port = "127.0.0.1", *port
	opts.HTTPPort = 0 // no monitoring port
	opts.NoLog = true
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return errors.New("nats-server did not become ready")
	}
	ns.WaitForShutdown()
	return nil
}
