package httpapi

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strconv"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// FuzzParseMiniProgramLogin: any body under any Content-Type either parses
// into a request within the input limits, which re-encodes (as JSON with
// user_info an object, a JSON string, and as a form) into the same request,
// or fails with a 4xx *api.Error: invalid_request or code_missing.
func FuzzParseMiniProgramLogin(f *testing.F) {
	const js, form = "application/json", "application/x-www-form-urlencoded"
	for _, s := range []struct{ ct, body string }{
		{js, `{"code":"abc"}`},
		{js, `{"code":"abc","app":"shop","nickname":"名字","avatar_url":"https://a.example/x.png","gender":1}`},
		{js, `{"code":"abc","user_info":{"nickName":"N","avatarUrl":"https://a.example/","gender":2,"language":"zh_CN","city":"C","province":"P","country":"CN"}}`},
		{js, `{"code":"abc","user_info":"{\"nickName\":\"N\",\"gender\":\"0\"}"}`},
		{js, `{"code":"abc","user_info":" {\"gender\":0} ","gender":"2"}`},
		{js, `{"code":"abc","user_info":null,"nickname":null}`},
		{js, `{"code":5}`},
		{js, `[1,2]`},
		{js, `null`},
		{js, ``},
		{"application/json; charset=utf-8", "{\"code\":\"c\",\"nickname\":\"a\\u0000b\"}"},
		{form, "code=abc&app=shop&nickname=%E5%90%8D&gender=1&avatar_url=https%3A%2F%2Fa.example%2F"},
		{form, "code=abc&user_info=%7B%22nickName%22%3A%22N%22%2C%22gender%22%3A1%7D"},
		{form, "code=a;b"},
		{form, "code=%zz"},
		{"multipart/form-data; boundary=x", "--x--"},
		{"application/json; =", `{"code":"c"}`},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req, err := parseMiniProgramLogin(contentType, body)
		if err != nil {
			checkClientError(t, err, api.CodeInvalidRequest, api.CodeCodeMissing)
			return
		}
		checkLoginRequest(t, req)
		for name, enc := range map[string]struct{ ct, body string }{
			"JSON":                  {js, loginJSON(t, req, false)},
			"JSON user_info string": {js, loginJSON(t, req, true)},
			"form":                  {form, loginForm(t, req)},
		} {
			again, err := parseMiniProgramLogin(enc.ct, []byte(enc.body))
			if err != nil {
				t.Fatalf("%s re-encoding %q of a valid request fails: %v", name, enc.body, err)
			}
			if !reflect.DeepEqual(again, req) {
				t.Fatalf("%s round trip: %+v, want %+v", name, again, req)
			}
		}
	})
}

// checkClientError asserts err is an *api.Error of one of codes that the
// gateway answers with a 4xx, never a 500-class one.
func checkClientError(t *testing.T, err error, codes ...api.Code) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not an *api.Error", err, err)
	}
	ok := false
	for _, c := range codes {
		ok = ok || e.Code == c
	}
	if !ok {
		t.Fatalf("error code %q, want one of %v", e.Code, codes)
	}
	if s := problem.Status(e.Code); s < 400 || s >= 500 {
		t.Fatalf("error %v answers HTTP %d, want a 4xx", err, s)
	}
	if !utf8.ValidString(e.Message) {
		t.Fatalf("error message %q is not UTF-8", e.Message)
	}
}

// checkLoginRequest asserts a parsed request respects every input limit.
func checkLoginRequest(t *testing.T, req identity.MiniProgramLoginRequest) {
	t.Helper()
	if req.Code == "" || len(req.Code) > maxCodeBytes || !isVisibleASCII(req.Code) {
		t.Fatalf("code %q accepted", req.Code)
	}
	checkText(t, "app", &req.App, maxAppBytes)
	if len(req.App) > maxAppBytes {
		t.Fatalf("app of %d bytes accepted", len(req.App))
	}
	p := req.Profile
	if p == nil {
		return
	}
	if *p == (identity.Profile{}) {
		t.Fatal("empty profile sent instead of none")
	}
	for _, f := range []struct {
		name string
		v    *string
		max  int
	}{
		{"nickname", p.Nickname, identity.MaxNicknameRunes}, {"language", p.Language, identity.MaxLanguageRunes},
		{"city", p.City, identity.MaxPlaceRunes}, {"province", p.Province, identity.MaxPlaceRunes}, {"country", p.Country, identity.MaxPlaceRunes},
	} {
		if f.v != nil && *f.v == "" {
			t.Fatalf("%s: empty value sent (would wipe the stored one)", f.name)
		}
		checkText(t, f.name, f.v, f.max)
	}
	if a := p.AvatarURL; a != nil {
		u, err := url.Parse(*a)
		if len(*a) > identity.MaxAvatarURLBytes || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			t.Fatalf("avatar_url %q accepted", *a)
		}
	}
	if g := p.Gender; g != nil && (*g < 0 || *g > 2) {
		t.Fatalf("gender %d accepted", *g)
	}
}

func checkText(t *testing.T, name string, v *string, maxRunes int) {
	t.Helper()
	if v == nil {
		return
	}
	if !utf8.ValidString(*v) || utf8.RuneCountInString(*v) > maxRunes {
		t.Fatalf("%s %q accepted", name, *v)
	}
	for _, r := range *v {
		if unicode.IsControl(r) {
			t.Fatalf("%s %q with a control character accepted", name, *v)
		}
	}
}

// loginJSON encodes req as a login body with the profile in user_info (as
// an object, or as the JSON string of one like wx.getUserInfo's rawData).
func loginJSON(t *testing.T, req identity.MiniProgramLoginRequest, userInfoString bool) string {
	body := map[string]any{"code": req.Code, "app": req.App}
	if p := req.Profile; p != nil {
		ui := map[string]any{"nickName": p.Nickname, "avatarUrl": p.AvatarURL, "gender": p.Gender,
			"language": p.Language, "city": p.City, "province": p.Province, "country": p.Country}
		body["user_info"] = ui
		if userInfoString {
			body["user_info"] = mustJSON(t, ui)
		}
	}
	return mustJSON(t, body)
}

// loginForm encodes req as a form, with the profile in user_info.
func loginForm(t *testing.T, req identity.MiniProgramLoginRequest) string {
	v := url.Values{"code": {req.Code}, "app": {req.App}}
	if p := req.Profile; p != nil {
		v.Set("user_info", mustJSON(t, map[string]any{"nickName": p.Nickname, "avatarUrl": p.AvatarURL, "gender": p.Gender,
			"language": p.Language, "city": p.City, "province": p.Province, "country": p.Country}))
		if p.Gender != nil {
			v.Set("gender", strconv.Itoa(*p.Gender)) // the flat field agrees
		}
	}
	return v.Encode()
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzParseFields: the body reader of register, bind, refresh and logout
// yields every named field (the first form value, a JSON string, "" when
// absent or null) and re-encodes to itself as a form and as JSON, or fails
// with 400 invalid_request.
func FuzzParseFields(f *testing.F) {
	const js, form = "application/json", "application/x-www-form-urlencoded"
	for _, s := range []struct{ ct, body string }{
		{js, `{"username":"alice","password":"Correct-Horse-9","bind_token":"bt.x"}`},
		{js, `{"username":null,"password":5}`},
		{js, `{"username":"a","username":"b"}`},
		{js, `["username"]`},
		{js, ``},
		{form, "username=alice&password=p%20w&username=bob"},
		{form, "password=%FF"},
		{form, "a=%zz"},
		{"text/plain", "username=alice"},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	names := []string{"username", "password", "bind_token"}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		got, err := parseFields(contentType, body, names...)
		if err != nil {
			checkClientError(t, err, api.CodeInvalidRequest)
			return
		}
		if len(got) != len(names) {
			t.Fatalf("fields %v, want exactly %v", got, names)
		}
		v := url.Values{}
		for _, n := range names {
			v.Set(n, got[n])
		}
		again, err := parseFields(form, []byte(v.Encode()), names...)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("form round trip: %v, %v; want %v", again, err, got)
		}
		for _, n := range names {
			if !utf8.ValidString(got[n]) {
				return // JSON cannot carry it
			}
		}
		again, err = parseFields(js, []byte(mustJSON(t, got)), names...)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("JSON round trip: %v, %v; want %v", again, err, got)
		}
	})
}
