package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

func ptr[T any](v T) *T { return &v }

func TestParseMiniProgramLogin(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	const js = "application/json; charset=utf-8"
	cases := []struct {
		name        string
		contentType string
		body        string
		want        identity.MiniProgramLoginRequest
		code        api.Code // "" for success
		detail      string
	}{
		{"minimal JSON", js, `{"code":"abc"}`, identity.MiniProgramLoginRequest{Code: "abc"}, "", ""},
		{"whitespace around JSON", js, " \n{\"code\":\"abc\"}\n ", identity.MiniProgramLoginRequest{Code: "abc"}, "", ""},
		{"unknown fields are ignored", js, `{"code":"abc","encryptedData":"x","iv":"y"}`, identity.MiniProgramLoginRequest{Code: "abc"}, "", ""},
		{"first form value wins", form, "code=a&code=b", identity.MiniProgramLoginRequest{Code: "a"}, "", ""},
		{"code at the byte limit", js, `{"code":"` + strings.Repeat("c", 256) + `"}`, identity.MiniProgramLoginRequest{Code: strings.Repeat("c", 256)}, "", ""},
		{"nickname at the rune limit", js, `{"code":"c","nickname":"` + strings.Repeat("名", 64) + `"}`,
			identity.MiniProgramLoginRequest{Code: "c", Profile: &identity.Profile{Nickname: ptr(strings.Repeat("名", 64))}}, "", ""},
		{"emoji nickname", js, `{"code":"c","nickname":"🐼 Panda"}`,
			identity.MiniProgramLoginRequest{Code: "c", Profile: &identity.Profile{Nickname: ptr("🐼 Panda")}}, "", ""},
		{"user_info null", js, `{"code":"c","user_info":null}`, identity.MiniProgramLoginRequest{Code: "c"}, "", ""},
		{"user_info empty string", js, `{"code":"c","user_info":""}`, identity.MiniProgramLoginRequest{Code: "c"}, "", ""},
		{"user_info string with padding", js, `{"code":"c","user_info":" {\"gender\":0} "}`,
			identity.MiniProgramLoginRequest{Code: "c", Profile: &identity.Profile{Gender: ptr(0)}}, "", ""},
		{"HTTPS avatar in capitals", js, `{"code":"c","avatar_url":"HTTPS://a.example/x"}`,
			identity.MiniProgramLoginRequest{Code: "c", Profile: &identity.Profile{AvatarURL: ptr("HTTPS://a.example/x")}}, "", ""},

		{"invalid UTF-8 in a form", form, "code=c&nickname=%FF%FE", identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "nickname"},
		{"code with a non-ASCII letter", js, `{"code":"cé"}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "code"},
		{"app with a newline", js, `{"code":"c","app":"a\nb"}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "app"},
		{"avatar with credentials", js, `{"code":"c","avatar_url":"https://u:p@a.example/x"}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "avatar_url"},
		{"avatar without host", js, `{"code":"c","avatar_url":"https:///x"}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "avatar_url"},
		{"user_info string of an array", js, `{"code":"c","user_info":"[1]"}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "user_info"},
		{"user_info field of the wrong type", js, `{"code":"c","user_info":{"city":5}}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "user_info.city"},
		{"user_info nickName with a control char", js, `{"code":"c","user_info":{"nickName":"a\u0007b"}}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "user_info.nickName: must not contain control characters"},
		{"user_info avatarUrl ftp", js, `{"code":"c","user_info":{"avatarUrl":"ftp://a.example/x"}}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "user_info.avatarUrl: must be an absolute http"},
		{"user_info gender 3", js, `{"code":"c","user_info":"{\"gender\":3}"}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "user_info.gender: must be 0"},
		{"gender -1", js, `{"code":"c","gender":-1}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "gender"},
		{"gender 1e0", js, `{"code":"c","gender":1e0}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "gender"},
		{"JSON string body", js, `"code"`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "object"},
		{"JSON null body", js, `null`, identity.MiniProgramLoginRequest{}, api.CodeCodeMissing, "code"},
		{"multipart", "multipart/form-data; boundary=x", "", identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "Content-Type"},
		{"malformed content type", "application/json; =", `{"code":"c"}`, identity.MiniProgramLoginRequest{}, api.CodeInvalidRequest, "Content-Type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseMiniProgramLogin(c.contentType, []byte(c.body))
			if c.code == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(c.want)
				if string(gj) != string(wj) {
					t.Errorf("got %s, want %s", gj, wj)
				}
				return
			}
			var e *api.Error
			if err == nil || api.CodeOf(err) != c.code {
				t.Fatalf("error %v, want %s", err, c.code)
			}
			e = err.(*api.Error)
			if !strings.Contains(e.Message, c.detail) {
				t.Errorf("message %q does not mention %q", e.Message, c.detail)
			}
		})
	}
}
