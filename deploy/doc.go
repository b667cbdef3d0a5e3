// Package deploy holds no code: its tests check the deployment files (the
// repository's docker-compose.yml, deploy/Dockerfile, the NATS configs) for
// the properties the README promises, without a Docker engine.
package deploy
