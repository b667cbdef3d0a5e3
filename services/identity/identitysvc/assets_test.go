package identitysvc

import (
	"fmt"
	"testing"

	"github.com/wxlogin/wxlogin/services/identity/internal/bindtoken"
	"github.com/wxlogin/wxlogin/services/identity/internal/faillimit"
	"github.com/wxlogin/wxlogin/services/identity/internal/outbox"
	"github.com/wxlogin/wxlogin/services/identity/internal/wxauth"
)

// Every asset createAssets makes carries the configured replica count (on
// a single server only 1 can be created, so this is checked on the configs).
func TestAssetConfigsCarryReplicas(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			got := map[string]int{
				"stream " + outbox.StreamConfig(n).Name:      outbox.StreamConfig(n).Replicas,
				"bucket " + bindtoken.BucketConfig(n).Bucket: bindtoken.BucketConfig(n).Replicas,
				"bucket " + wxauth.BucketConfig(n).Bucket:    wxauth.BucketConfig(n).Replicas,
				"bucket " + faillimit.BucketConfig(n).Bucket: faillimit.BucketConfig(n).Replicas,
			}
			for name, r := range got {
				if r != n {
					t.Errorf("%s: %d replicas, want %d", name, r, n)
				}
			}
		})
	}
}
