package accounts

import (
	"strconv"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/wechat/oapush"
)

// TestCheckSignedFreshness: a valid signature counts only while its
// timestamp is current: at most signedMaxAge old, signedMaxAhead ahead.
func TestCheckSignedFreshness(t *testing.T) {
	app := apps.App{AppID: "wx1", Token: "tokentoken"}
	now := time.Unix(1_800_000_000, 0)
	signed := func(ts string) identity.OASigned {
		return identity.OASigned{AppID: app.AppID, Signature: oapush.Signature(app.Token, ts, "42"), Timestamp: ts, Nonce: "42"}
	}
	at := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	for _, tc := range []struct {
		name, ts string
		ok       bool
	}{
		{"now", at(0), true},
		{"at the oldest", at(-signedMaxAge), true},
		{"just too old", at(-signedMaxAge - time.Second), false},
		{"an hour old", at(-time.Hour), false},
		{"at the most ahead", at(signedMaxAhead), true},
		{"just too far ahead", at(signedMaxAhead + time.Second), false},
		{"not a number", "soon", false},
		{"a leading zero", "0" + at(0), false},
		{"a plus sign", "+" + at(0), false},
	} {
		err := checkSigned(app, signed(tc.ts), now)
		if tc.ok != (err == nil) {
			t.Errorf("%s (%s): %v", tc.name, tc.ts, err)
		}
		if e, isAPI := err.(*api.Error); err != nil && (!isAPI || e.Code != api.CodeSignatureInvalid) {
			t.Errorf("%s: %v, want signature_invalid", tc.name, err)
		}
	}
}
