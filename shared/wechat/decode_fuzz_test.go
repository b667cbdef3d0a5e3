package wechat

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzAnswer has a field of each kind the client decodes: strings, a
// number-or-string integer and a string-or-number.
type fuzzAnswer struct {
	OpenID      string     `json:"openid"`
	SessionKey  string     `json:"session_key"`
	ExpiresIn   flexInt    `json:"expires_in"`
	CountryCode flexString `json:"countryCode"`
}

// FuzzDecode: whatever WeChat answers, decode returns exactly one of
// success, an *Error carrying a non-zero errcode, or ErrUnavailable; it
// succeeds only when the errcode is absent or exactly zero, takes a non-zero
// integer errcode as is, keeps errmsg short and valid UTF-8, and a decoded
// answer re-encodes to itself.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"openid":"o1","session_key":"k","unionid":"u"}`,
		`{"errcode":0,"errmsg":"ok","openid":"o1","expires_in":7200,"countryCode":86}`,
		`{"errcode":"0","openid":"o1","expires_in":"7200","countryCode":"86"}`,
		`{"errcode":40029,"errmsg":"invalid code, rid: 6492c3f2-2b1a3c4d"}`,
		`{"errcode":"40163","errmsg":"code been used"}`,
		`{"errcode":-1,"errmsg":"system error"}`,
		`{"errcode":0.5}`,
		`{"errcode":1e3}`,
		`{"errcode":"NaN"}`,
		`{"errcode":40029,"ErrCode":0,"openid":"o1"}`,
		`{"errcode":null,"openid":"o1","expires_in":""}`,
		`{"openid":5}`,
		`{"expires_in":"soon"}`,
		`[]`,
		`null`,
		`<html>502 Bad Gateway</html>`,
		``,
	} {
		f.Add(http.StatusOK, []byte(s))
	}
	f.Add(http.StatusInternalServerError, []byte(`{"errcode":-1}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		var out fuzzAnswer
		err := decode("/sns/jscode2session", status, body, &out)
		if err != nil && len(err.Error()) > 512 {
			t.Fatalf("error of %d bytes: %.100q…", len(err.Error()), err)
		}
		var we *Error
		switch {
		case err == nil:
			if status != http.StatusOK {
				t.Fatalf("HTTP %d decoded as success", status)
			}
			if code, ok := lastErrcode(body); ok && !zeroErrcode(code) {
				t.Fatalf("errcode %s decoded as success", code)
			}
			again := mustReencode(t, out)
			var got fuzzAnswer
			if err := decode("/x", http.StatusOK, again, &got); err != nil || got != out {
				t.Fatalf("re-encoded %s decodes to %+v, %v; want %+v", again, got, err, out)
			}
		case errors.As(err, &we):
			if errors.Is(err, ErrUnavailable) || we.Code == 0 || status != http.StatusOK {
				t.Fatalf("errcode error %v for HTTP %d", err, status)
			}
			if len(we.Msg) > maxErrMsg || !utf8.ValidString(we.Msg) {
				t.Fatalf("errmsg %q kept", we.Msg)
			}
			if code, ok := lastErrcode(body); ok {
				if n, perr := strconv.ParseInt(strings.Trim(string(code), `"`), 10, 0); perr == nil && int(n) != we.Code {
					t.Fatalf("errcode %s read as %d", code, we.Code)
				}
			}
		case errors.Is(err, ErrUnavailable):
		default:
			t.Fatalf("error %T %v is neither *Error nor ErrUnavailable", err, err)
		}
	})
}

// lastErrcode is the raw value of the errcode member of a JSON object as
// encoding/json reads it into a struct: keys match case-insensitively and
// the last match wins.
func lastErrcode(body []byte) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // {
		return nil, false
	}
	var last json.RawMessage
	found := false
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		if s, _ := k.(string); strings.EqualFold(s, "errcode") {
			last, found = v, true
		}
	}
	return last, found
}

// zeroErrcode reports whether an errcode value means success.
func zeroErrcode(v json.RawMessage) bool {
	switch s := string(v); s {
	case "null", `""`, "0", `"0"`:
		return true
	default:
		var str string
		if json.Unmarshal(v, &str) == nil {
			s = str
		}
		n, err := strconv.ParseInt(s, 10, 0)
		return err == nil && n == 0
	}
}

func mustReencode(t *testing.T, a fuzzAnswer) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"openid": a.OpenID, "session_key": a.SessionKey,
		"expires_in": int(a.ExpiresIn), "countryCode": string(a.CountryCode)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
