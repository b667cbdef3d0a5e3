package api

import "testing"

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"6ba7b810-9dad-41d1-80b4-00c04fd430c8":          true,
		"6BA7B810-9DAD-41D1-80B4-00C04FD430C8":          false,
		"{6ba7b810-9dad-41d1-80b4-00c04fd430c8}":        false,
		"urn:uuid:6ba7b810-9dad-41d1-80b4-00c04fd430c8": false,
		"6ba7b8109dad41d180b400c04fd430c8":              false,
		"6ba7b810-9dad-41d1-80b4-00c04fd430c":           false,
		"":                                              false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
