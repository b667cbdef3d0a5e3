package session

import "testing"

func TestParseOAScene(t *testing.T) {
	for scene, ok := range map[string]bool{
		OAScene("t1", "s1"): true,
		"wxl.t1":            false,
		"wxl..s1":           false,
		"wxl.t1.":           false,
		"wxl.t1.s1.x":       false,
		"t1.s1":             false,
		"qrscene_wxl.t1.s1": false,
		"":                  false,
	} {
		if _, _, got := ParseOAScene(scene); got != ok {
			t.Errorf("ParseOAScene(%q) ok = %v", scene, got)
		}
	}
}
