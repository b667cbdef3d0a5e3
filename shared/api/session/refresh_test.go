package session

import "testing"

func TestRefreshTokenUser(t *testing.T) {
	for token, want := range map[string]string{
		"6ba7b810-9dad-41d1-80b4-00c04fd430c8.0b0e5a64-3c1f-4a7e-9d0f-6c1f2b9b7e11.3.c2VjcmV0": "6ba7b810-9dad-41d1-80b4-00c04fd430c8",
		"6ba7b810-9dad-41d1-80b4-00c04fd430c8.":                                                "6ba7b810-9dad-41d1-80b4-00c04fd430c8",
		// No id as wxlogin writes them: nothing to look up.
		"u1.0b0e5a64-3c1f-4a7e-9d0f-6c1f2b9b7e11.3.c2VjcmV0": "",
		"urn:uuid:6ba7b810-9dad-41d1-80b4-00c04fd430c8.x":    "",
		"6BA7B810-9DAD-41D1-80B4-00C04FD430C8.x":             "",
		"{6ba7b810-9dad-41d1-80b4-00c04fd430c8}.x":           "",
		"6ba7b8109dad41d180b400c04fd430c8.x":                 "",
		"nodots":                                             "",
		".family":                                            "",
		"":                                                   "",
	} {
		if got := RefreshTokenUser(token); got != want {
			t.Errorf("RefreshTokenUser(%q) = %q, want %q", token, got, want)
		}
	}
}
