// Package composetest runs the production shape (docker-compose.yml) for
// real: `make compose-test` builds the images and drives the stack through
// its paces with the composetest build tag (see composetest_test.go and
// ../README.md "What CI proves"). Without the tag there is nothing here.
package composetest
