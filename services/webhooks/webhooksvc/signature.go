package webhooksvc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Sign is the webhook-signature of a delivery: for each key,
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>", space-separated.
func Sign(keys [][]byte, id string, timestamp int64, body []byte) string {
	ts := strconv.FormatInt(timestamp, 10)
	sigs := make([]string, len(keys))
	for i, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	return strings.Join(sigs, " ")
}

// deadLetterKey derives the key that authenticates an endpoint's dead
// letters from one of its secrets: another key than the one that signs
// deliveries, so neither MAC can stand in for the other.
func deadLetterKey(secret []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("wxlogin webhooks dead letter"))
	return mac.Sum(nil)
}

// deadLetterMAC authenticates body as a dead letter of the endpoint name.
func deadLetterMAC(secret []byte, name string, body []byte) string {
	mac := hmac.New(sha256.New, deadLetterKey(secret))
	mac.Write([]byte(name + "\x00"))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// checkDeadLetterMAC reports whether got authenticates body under one of
// the endpoint's current secrets.
func (e *Endpoint) checkDeadLetterMAC(got string, body []byte) bool {
	for _, key := range e.keys {
		if hmac.Equal([]byte(got), []byte(deadLetterMAC(key, e.Name, body))) {
			return true
		}
	}
	return false
}
