package session

import "testing"

func TestRefreshTokenUser(t *testing.T) {
	for token, want := range map[string]string{
		"u1.0b0e5a64-3c1f-4a7e-9d0f-6c1f2b9b7e11.3.c2VjcmV0": "u1",
		"u1.":     "u1",
		"nodots":  "",
		".family": "",
		"":        "",
	} {
		if got := RefreshTokenUser(token); got != want {
			t.Errorf("RefreshTokenUser(%q) = %q, want %q", token, got, want)
		}
	}
}
