package httpapi

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// wantErr checks err against the expected code and a detail fragment
// (code "" expects success).
func wantErr(t *testing.T, err error, code api.Code, detail string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v, want %s", err, code)
	}
	if e.Code != code || !strings.Contains(e.Message, detail) {
		t.Fatalf("error %s %q, want %s containing %q", e.Code, e.Message, code, detail)
	}
}

func TestCredentialsAndProof(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name      string
		f         map[string]string
		needProof bool
		want      identity.WeChatProof
		code      api.Code
		detail    string
	}{
		{"username and password", map[string]string{"username": "alice", "password": "secret-pw"}, false, identity.WeChatProof{}, "", ""},
		{"with a bind token", map[string]string{"username": "alice", "password": "pw", "bind_token": "bt_1-2.3"}, true, identity.WeChatProof{BindToken: "bt_1-2.3"}, "", ""},
		{"with a code and app", map[string]string{"username": "alice", "password": "pw", "code": "c0de", "app": "shop"}, true, identity.WeChatProof{Code: "c0de", App: "shop"}, "", ""},
		{"limits are inclusive", map[string]string{"username": long(64), "password": long(128), "bind_token": long(256)}, false, identity.WeChatProof{BindToken: long(256)}, "", ""},
		{"rules beyond shape are identity's", map[string]string{"username": "A", "password": "x"}, false, identity.WeChatProof{}, "", ""},

		{"no username", map[string]string{"password": "pw"}, false, identity.WeChatProof{}, api.CodeInvalidRequest, "username: is required"},
		{"no password", map[string]string{"username": "alice"}, false, identity.WeChatProof{}, api.CodeInvalidRequest, "password: is required"},
		{"long username", map[string]string{"username": long(65), "password": "pw"}, false, identity.WeChatProof{}, api.CodeInvalidRequest, "username: must be at most 64 bytes"},
		{"long password", map[string]string{"username": "alice", "password": long(129)}, false, identity.WeChatProof{}, api.CodeInvalidRequest, "password: must be at most 128 bytes"},
		{"username with a newline", map[string]string{"username": "al\nice", "password": "pw"}, false, identity.WeChatProof{}, api.CodeInvalidRequest, "username"},
		{"both proofs", map[string]string{"username": "alice", "password": "pw", "bind_token": "b", "code": "c"}, false, identity.WeChatProof{}, api.CodeInvalidRequest, "not both"},
		{"bind without a proof", map[string]string{"username": "alice", "password": "pw"}, true, identity.WeChatProof{}, api.CodeInvalidRequest, "bind_token or code is required"},
		{"long bind token", map[string]string{"username": "alice", "password": "pw", "bind_token": long(257)}, false, identity.WeChatProof{}, api.CodeInvalidRequest, "bind_token: must be at most 256"},
		{"bind token with a space", map[string]string{"username": "alice", "password": "pw", "bind_token": "a b"}, false, identity.WeChatProof{}, api.CodeInvalidRequest, "bind_token"},
		{"long code", map[string]string{"username": "alice", "password": "pw", "code": long(257)}, false, identity.WeChatProof{}, api.CodeInvalidRequest, "code: must be at most 256"},
		{"long app", map[string]string{"username": "alice", "password": "pw", "code": "c", "app": long(65)}, false, identity.WeChatProof{}, api.CodeInvalidRequest, "app: must be at most 64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := credentialsAndProof(c.f, c.needProof)
			wantErr(t, err, c.code, c.detail)
			if c.code == "" && got != c.want {
				t.Errorf("proof %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	cases := []struct {
		name, contentType, body string
		want                    map[string]string
		detail                  string
	}{
		{"JSON", "application/json", `{"username":"a","password":"p","extra":1}`, map[string]string{"username": "a", "password": "p"}, ""},
		{"JSON null is absent", "application/json", `{"username":null}`, map[string]string{"username": "", "password": ""}, ""},
		{"empty body", "application/json", ``, map[string]string{"username": "", "password": ""}, ""},
		{"form", "application/x-www-form-urlencoded; charset=utf-8", `username=a&password=p%26q`, map[string]string{"username": "a", "password": "p&q"}, ""},
		{"JSON number", "application/json", `{"username":5}`, nil, "username: must be a string"},
		{"JSON array", "application/json", `[1]`, nil, "JSON object"},
		{"malformed JSON", "application/json", `{"username":`, nil, "malformed JSON"},
		{"malformed form", "application/x-www-form-urlencoded", `username=%zz`, nil, "malformed form"},
		{"text/plain", "text/plain", `username=a`, nil, "Content-Type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseFields(c.contentType, []byte(c.body), "username", "password")
			if c.detail != "" {
				wantErr(t, err, api.CodeInvalidRequest, c.detail)
				return
			}
			wantErr(t, err, "", "")
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseProfilePatch(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	const js = "application/json"
	cases := []struct {
		name, contentType, body string
		want                    identity.UserUpdateRequest
		detail                  string // "" for success
	}{
		{"every field", js, `{"nickname":"Ann","avatar_url":"https://a.example/x.png","gender":2,"language":"zh_CN","city":"深圳",` +
			`"province":"广东","country":"中国","email":"ann@example.com","date_of_birth":"1990-05-17","description":"line one\nline two"}`,
			identity.UserUpdateRequest{Profile: identity.Profile{Nickname: ptr("Ann"), AvatarURL: ptr("https://a.example/x.png"), Gender: ptr(2),
				Language: ptr("zh_CN"), City: ptr("深圳"), Province: ptr("广东"), Country: ptr("中国")},
				Email: ptr("ann@example.com"), DateOfBirth: ptr("1990-05-17"), Description: ptr("line one\nline two")}, ""},
		{"merge patch content type", "application/merge-patch+json", `{"city":"Beijing"}`,
			identity.UserUpdateRequest{Profile: identity.Profile{City: ptr("Beijing")}}, ""},
		{"null and empty clear", js, `{"nickname":null,"email":"","date_of_birth":null,"gender":null}`,
			identity.UserUpdateRequest{Profile: identity.Profile{Nickname: ptr(""), Gender: ptr(0)}, Email: ptr(""), DateOfBirth: ptr("")}, ""},
		{"gender as a string", js, `{"gender":"1"}`, identity.UserUpdateRequest{Profile: identity.Profile{Gender: ptr(1)}}, ""},
		{"today is not the future", js, `{"date_of_birth":"2026-03-10"}`, identity.UserUpdateRequest{DateOfBirth: ptr("2026-03-10")}, ""},
		{"tomorrow somewhere already", js, `{"date_of_birth":"2026-03-11"}`, identity.UserUpdateRequest{DateOfBirth: ptr("2026-03-11")}, ""},
		{"description at the limit", js, `{"description":"` + strings.Repeat("字", 500) + `"}`, identity.UserUpdateRequest{Description: ptr(strings.Repeat("字", 500))}, ""},

		{"empty object", js, `{}`, identity.UserUpdateRequest{}, "nothing to update"},
		{"empty body", js, ``, identity.UserUpdateRequest{}, "nothing to update"},
		{"form body", "application/x-www-form-urlencoded", `nickname=a`, identity.UserUpdateRequest{}, "Content-Type"},
		{"unknown field", js, `{"nick":"a"}`, identity.UserUpdateRequest{}, `"nick": unknown or read-only`},
		{"read-only field", js, `{"phone_number":"+861"}`, identity.UserUpdateRequest{}, `"phone_number": unknown or read-only`},
		{"unknown field at the echo limit", js, `{"` + strings.Repeat("n", 64) + `":1}`, identity.UserUpdateRequest{}, `"` + strings.Repeat("n", 64) + `": unknown`},
		// 64 bytes end inside the 22nd 名: the cut keeps 21 of them.
		{"long unknown field cut on a rune", js, `{"` + strings.Repeat("名", 4000) + `":1}`, identity.UserUpdateRequest{}, `"` + strings.Repeat("名", 21) + `"…: unknown`},
		{"unknown field with a control char", js, `{"a\u0007":1}`, identity.UserUpdateRequest{}, `"a\a": unknown`},
		{"nickname too long", js, `{"nickname":"` + strings.Repeat("n", 65) + `"}`, identity.UserUpdateRequest{}, "nickname: must be at most 64"},
		{"nickname not a string", js, `{"nickname":1}`, identity.UserUpdateRequest{}, "nickname: must be a string"},
		{"avatar ftp", js, `{"avatar_url":"ftp://a.example/x"}`, identity.UserUpdateRequest{}, "avatar_url"},
		{"avatar too long", js, `{"avatar_url":"https://a.example/` + strings.Repeat("x", 1024) + `"}`, identity.UserUpdateRequest{}, "avatar_url: must be at most 1024"},
		{"gender 3", js, `{"gender":3}`, identity.UserUpdateRequest{}, "gender"},
		{"gender empty string", js, `{"gender":""}`, identity.UserUpdateRequest{}, "gender"},
		{"gender object", js, `{"gender":{}}`, identity.UserUpdateRequest{}, "gender"},
		{"language too long", js, `{"language":"` + strings.Repeat("l", 33) + `"}`, identity.UserUpdateRequest{}, "language"},
		{"city with a control char", js, `{"city":"a\u0007b"}`, identity.UserUpdateRequest{}, "city"},
		{"email without @", js, `{"email":"ann.example.com"}`, identity.UserUpdateRequest{}, "email"},
		{"email with a name", js, `{"email":"Ann <ann@example.com>"}`, identity.UserUpdateRequest{}, "email"},
		{"email without a dot in the domain", js, `{"email":"ann@localhost"}`, identity.UserUpdateRequest{}, "email"},
		{"email too long", js, `{"email":"` + strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + `.com"}`, identity.UserUpdateRequest{}, "email: must be at most 254"},
		{"date in another format", js, `{"date_of_birth":"17/05/1990"}`, identity.UserUpdateRequest{}, "date_of_birth: must be a date"},
		{"impossible date", js, `{"date_of_birth":"1990-02-30"}`, identity.UserUpdateRequest{}, "date_of_birth: must be a date"},
		{"future date", js, `{"date_of_birth":"2026-03-12"}`, identity.UserUpdateRequest{}, "date_of_birth: must not be in the future"},
		{"too old", js, `{"date_of_birth":"1899-12-31"}`, identity.UserUpdateRequest{}, "date_of_birth: must be 1900"},
		{"description too long", js, `{"description":"` + strings.Repeat("d", 501) + `"}`, identity.UserUpdateRequest{}, "description: must be at most 500"},
		{"description with a bell", js, `{"description":"a\u0007"}`, identity.UserUpdateRequest{}, "description"},
		{"array body", js, `[]`, identity.UserUpdateRequest{}, "JSON object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseProfilePatch(c.contentType, []byte(c.body), now)
			if c.detail != "" {
				wantErr(t, err, api.CodeInvalidRequest, c.detail)
				return
			}
			wantErr(t, err, "", "")
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %s\nwant %s", dump(got), dump(c.want))
			}
		})
	}
}

func dump(r identity.UserUpdateRequest) string {
	var b strings.Builder
	s := func(name string, p *string) {
		if p != nil {
			b.WriteString(name + "=" + *p + " ")
		}
	}
	s("nickname", r.Nickname)
	s("avatar", r.AvatarURL)
	s("language", r.Language)
	s("city", r.City)
	s("province", r.Province)
	s("country", r.Country)
	s("email", r.Email)
	s("dob", r.DateOfBirth)
	s("description", r.Description)
	if r.Gender != nil {
		b.WriteString("gender=" + string(rune('0'+*r.Gender)))
	}
	return b.String()
}

func TestParseAdminSearch(t *testing.T) {
	cases := []struct {
		query  string
		want   identity.AdminSearchRequest
		detail string
	}{
		{"", identity.AdminSearchRequest{Page: 1, PageSize: 20}, ""},
		{"q=alice&page=3&page_size=100", identity.AdminSearchRequest{Q: "alice", Page: 3, PageSize: 100}, ""},
		{"q=%E5%BC%A0&page_size=1", identity.AdminSearchRequest{Q: "张", Page: 1, PageSize: 1}, ""},
		{"page=0", identity.AdminSearchRequest{}, "page: must be an integer from 1"},
		{"page=-1", identity.AdminSearchRequest{}, "page:"},
		{"page=x", identity.AdminSearchRequest{}, "page:"},
		{"page=1000001", identity.AdminSearchRequest{}, "page:"},
		{"page_size=0", identity.AdminSearchRequest{}, "page_size: must be an integer from 1 to 100"},
		{"page_size=101", identity.AdminSearchRequest{}, "page_size"},
		{"q=" + strings.Repeat("q", 129), identity.AdminSearchRequest{}, "q: must be at most 128"},
		{"q=a%00b", identity.AdminSearchRequest{}, "q: must not contain control"},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			q, err := url.ParseQuery(c.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseAdminSearch(q)
			if c.detail != "" {
				wantErr(t, err, api.CodeInvalidRequest, c.detail)
				return
			}
			wantErr(t, err, "", "")
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}
