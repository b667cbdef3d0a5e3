package session

import (
	"encoding/json"
	"testing"
)

func TestRevokedKeys(t *testing.T) {
	tests := []struct {
		key, prefix, id string
	}{
		{RevokedJTIKey("5b0c8f7e-2a4d-4c31-9e8b-7f6a5d4c3b2a"), RevokedJTIPrefix, "5b0c8f7e-2a4d-4c31-9e8b-7f6a5d4c3b2a"},
		{RevokedSIDKey("s1"), RevokedSIDPrefix, "s1"},
		{RevokedUserKey("u1"), RevokedUserPrefix, "u1"},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			if tc.key != tc.prefix+tc.id {
				t.Fatalf("key %q, want %q", tc.key, tc.prefix+tc.id)
			}
			prefix, id, ok := ParseRevokedKey(tc.key)
			if !ok || prefix != tc.prefix || id != tc.id {
				t.Fatalf("ParseRevokedKey(%q) = %q, %q, %v", tc.key, prefix, id, ok)
			}
		})
	}
	for _, key := range []string{"", "jti.", "user", "other.x", "5b0c8f7e-2a4d-4c31-9e8b-7f6a5d4c3b2a"} {
		t.Run("not a revocation key "+key, func(t *testing.T) {
			if _, _, ok := ParseRevokedKey(key); ok {
				t.Fatalf("ParseRevokedKey(%q) ok", key)
			}
		})
	}
}

func TestRevocationJSON(t *testing.T) {
	tests := []struct {
		v    Revocation
		want string
	}{
		{Revocation{At: 1700000000}, `{"at":1700000000}`},
		{Revocation{At: 1700000000, Exp: 1700003600}, `{"at":1700000000,"exp":1700003600}`},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			b, err := json.Marshal(tc.v)
			if err != nil || string(b) != tc.want {
				t.Fatalf("Marshal = %s, %v", b, err)
			}
			got, err := DecodeRevocation(b)
			if err != nil || got != tc.v {
				t.Fatalf("DecodeRevocation = %+v, %v", got, err)
			}
		})
	}
	if _, err := DecodeRevocation([]byte("1700000000x")); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestRevokeRequestJSON(t *testing.T) {
	b, err := json.Marshal(RevokeRequest{UserID: "u1"})
	if err != nil || string(b) != `{"user_id":"u1"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
}
