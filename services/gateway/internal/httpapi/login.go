package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

// Input limits. The contract has no 413, so an oversize body or field is a
// 400 invalid_request like any other bad input.
const (
	maxBodyBytes     = 64 << 10
	maxCodeBytes     = 256
	maxAppBytes      = 64
	maxUserInfoBytes = 8 << 10
)

// tokenResponse is the token answer of every login route.
type tokenResponse struct {
	session.Tokens
	User      api.User `json:"user"`
	IsNewUser bool     `json:"is_new_user"`
}

// miniProgramLogin exchanges a wx.login code for tokens: identity resolves
// the user, session issues the pair.
func (s *server) miniProgramLogin(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	req, err := parseMiniProgramLogin(c.GetHeader("Content-Type"), body)
	if err != nil {
		s.fail(c, err)
		return
	}

	s.login(c, api.KindMiniProgram, http.StatusOK, func(ctx context.Context) (identity.LoginResult, error) {
		return s.identity.MiniProgramLogin(ctx, req)
	})
}

// login runs every login but the website's: identity resolves the user
// (with a deadline long enough for a WeChat call), session issues the pair,
// and the outcome is counted once by kind.
func (s *server) login(c *gin.Context, kind string, status int, resolve func(context.Context) (identity.LoginResult, error)) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), wechatCallTimeout)
	res, err := resolve(ctx)
	cancel()
	if err != nil {
		if s.clientGone(c) {
			return // not a failed login: nobody waits for it
		}
		s.metrics.Login(kind, err)
		s.fail(c, err)
		return
	}
	middleware.SetUserID(c, res.User.ID)
	ctx, cancel = context.WithTimeout(c.Request.Context(), callTimeout)
	tokens, err := s.session.Issue(ctx, session.IssueRequest{UserID: res.User.ID, Kind: kind, AppID: res.AppID})
	cancel()
	if err != nil && s.clientGone(c) {
		return
	}
	s.metrics.Login(kind, err)
	if err != nil {
		s.fail(c, err)
		return
	}
	writeTokens(c, status, tokens, res.User, res.IsNewUser)
}

// writeTokens answers with a token pair, uncacheable (RFC 6749 section 5.1).
func writeTokens(c *gin.Context, status int, t session.Tokens, u api.User, isNew bool) {
	if t.TokenType == "" {
		t.TokenType = "Bearer"
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	c.JSON(status, tokenResponse{Tokens: t, User: u, IsNewUser: isNew})
}

// readBody reads at most maxBodyBytes of the request body.
func readBody(c *gin.Context) ([]byte, error) {
	tooBig := api.Errorf(api.CodeInvalidRequest, "request body must be at most %d bytes", maxBodyBytes)
	if c.Request.ContentLength > maxBodyBytes {
		return nil, tooBig
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooBig
		}
		return nil, api.Errorf(api.CodeInvalidRequest, "could not read the request body")
	}
	return body, nil
}

// loginFields are the login inputs as sent, before validation.
type loginFields struct {
	code, app string
	userInfo  *userInfoFields // nil when user_info was not sent
	// The flat alternative to user_info.
	nickname, avatarURL, gender string
}

// userInfoFields are the fields of wx.getUserInfo's rawData. gender is its
// text, whether it came as a number or a string.
type userInfoFields struct {
	nickName, avatarURL, gender, language, city, province, country string
}

// parseMiniProgramLogin validates a login body (JSON or form) into the
// identity request. Errors are *api.Error naming the offending field.
func parseMiniProgramLogin(contentType string, body []byte) (identity.MiniProgramLoginRequest, error) {
	var f loginFields
	mt, _, err := mime.ParseMediaType(contentType)
	switch {
	case err == nil && mt == "application/json":
		f, err = jsonLoginFields(body)
	case err == nil && mt == "application/x-www-form-urlencoded":
		f, err = formLoginFields(body)
	default:
		err = api.Errorf(api.CodeInvalidRequest, "Content-Type must be application/json or application/x-www-form-urlencoded")
	}
	if err != nil {
		return identity.MiniProgramLoginRequest{}, err
	}
	return f.request()
}

func jsonLoginFields(body []byte) (loginFields, error) {
	var f loginFields
	if len(bytes.TrimSpace(body)) == 0 {
		return f, nil
	}
	var in struct {
		Code      json.RawMessage `json:"code"`
		App       json.RawMessage `json:"app"`
		UserInfo  json.RawMessage `json:"user_info"`
		Nickname  json.RawMessage `json:"nickname"`
		AvatarURL json.RawMessage `json:"avatar_url"`
		Gender    json.RawMessage `json:"gender"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return f, api.Errorf(api.CodeInvalidRequest, "body must be a JSON object")
		}
		return f, api.Errorf(api.CodeInvalidRequest, "malformed JSON body")
	}
	var err error
	if f.code, err = jsonString("code", in.Code); err != nil {
		return f, err
	}
	if f.app, err = jsonString("app", in.App); err != nil {
		return f, err
	}
	if f.nickname, err = jsonString("nickname", in.Nickname); err != nil {
		return f, err
	}
	if f.avatarURL, err = jsonString("avatar_url", in.AvatarURL); err != nil {
		return f, err
	}
	if f.gender, err = jsonNumberText("gender", in.Gender); err != nil {
		return f, err
	}
	if f.userInfo, err = jsonUserInfo(in.UserInfo); err != nil {
		return f, err
	}
	return f, nil
}

func formLoginFields(body []byte) (loginFields, error) {
	var f loginFields
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return f, api.Errorf(api.CodeInvalidRequest, "malformed form body")
	}
	f.code, f.app = vals.Get("code"), vals.Get("app")
	f.nickname, f.avatarURL, f.gender = vals.Get("nickname"), vals.Get("avatar_url"), vals.Get("gender")
	if s := vals.Get("user_info"); s != "" {
		if f.userInfo, err = userInfoFromString(s); err != nil {
			return f, err
		}
	}
	return f, nil
}

// jsonUserInfo decodes user_info: an object, or the raw JSON string of one
// (what wx.getUserInfo returns as rawData).
func jsonUserInfo(raw json.RawMessage) (*userInfoFields, error) {
	switch {
	case isNull(raw):
		return nil, nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalidField("user_info", "malformed string")
		}
		if s == "" {
			return nil, nil
		}
		return userInfoFromString(s)
	case raw[0] == '{':
		return userInfoFromJSON(raw)
	default:
		return nil, invalidField("user_info", "must be an object or a JSON string of one")
	}
}

func userInfoFromString(s string) (*userInfoFields, error) {
	if len(s) > maxUserInfoBytes {
		return nil, invalidField("user_info", fmt.Sprintf("must be at most %d bytes", maxUserInfoBytes))
	}
	raw := bytes.TrimSpace([]byte(s))
	if len(raw) == 0 || raw[0] != '{' {
		return nil, invalidField("user_info", "must hold a JSON object")
	}
	return userInfoFromJSON(raw)
}

func userInfoFromJSON(raw []byte) (*userInfoFields, error) {
	var in struct {
		NickName  json.RawMessage `json:"nickName"`
		AvatarURL json.RawMessage `json:"avatarUrl"`
		Gender    json.RawMessage `json:"gender"`
		Language  json.RawMessage `json:"language"`
		City      json.RawMessage `json:"city"`
		Province  json.RawMessage `json:"province"`
		Country   json.RawMessage `json:"country"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, invalidField("user_info", "malformed JSON")
	}
	var u userInfoFields
	var err error
	for _, s := range []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{
		{"user_info.nickName", in.NickName, &u.nickName},
		{"user_info.avatarUrl", in.AvatarURL, &u.avatarURL},
		{"user_info.language", in.Language, &u.language},
		{"user_info.city", in.City, &u.city},
		{"user_info.province", in.Province, &u.province},
		{"user_info.country", in.Country, &u.country},
	} {
		if *s.dst, err = jsonString(s.name, s.raw); err != nil {
			return nil, err
		}
	}
	if u.gender, err = jsonNumberText("user_info.gender", in.Gender); err != nil {
		return nil, err
	}
	return &u, nil
}

// request validates every field and builds the identity request. Empty
// profile fields count as not sent, so a form with blank inputs cannot wipe
// a stored profile.
func (f loginFields) request() (identity.MiniProgramLoginRequest, error) {
	var req identity.MiniProgramLoginRequest
	switch {
	case f.code == "":
		return req, api.Errorf(api.CodeCodeMissing, "code is required: send the code from wx.login")
	case len(f.code) > maxCodeBytes:
		return req, invalidField("code", fmt.Sprintf("must be at most %d bytes", maxCodeBytes))
	case !isVisibleASCII(f.code):
		return req, invalidField("code", "must be printable ASCII without spaces")
	}
	req.Code = f.code
	if len(f.app) > maxAppBytes {
		return req, invalidField("app", fmt.Sprintf("must be at most %d bytes", maxAppBytes))
	}
	if _, err := text("app", f.app, maxAppBytes); err != nil {
		return req, err
	}
	req.App = f.app

	// The profile's rules are identity's (the shared contract): checked
	// here too, so a bad field is a 400 naming it as the client sent it.
	var p identity.Profile
	if u := f.userInfo; u != nil {
		p = identity.Profile{Nickname: optional(u.nickName), AvatarURL: optional(u.avatarURL), Gender: optionalGender(u.gender),
			Language: optional(u.language), City: optional(u.city), Province: optional(u.province), Country: optional(u.country)}
		if err := identity.CheckProfileAs(&p, userInfoName); err != nil {
			return req, err
		}
	}
	flat := identity.Profile{Nickname: optional(f.nickname), AvatarURL: optional(f.avatarURL), Gender: optionalGender(f.gender)}
	if err := identity.CheckProfile(&flat); err != nil {
		return req, err
	}
	// Flat fields are the more explicit form; they win over user_info.
	if flat.Nickname != nil {
		p.Nickname = flat.Nickname
	}
	if flat.AvatarURL != nil {
		p.AvatarURL = flat.AvatarURL
	}
	if flat.Gender != nil {
		p.Gender = flat.Gender
	}
	if p != (identity.Profile{}) {
		req.Profile = &p
	}
	return req, nil
}

// userInfoName names a profile field as wx.getUserInfo's rawData does.
func userInfoName(field string) string {
	switch field {
	case "nickname":
		return "user_info.nickName"
	case "avatar_url":
		return "user_info.avatarUrl"
	}
	return "user_info." + field
}

// optional is v, nil when empty.
func optional(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

// optionalGender is the gender text as a number, nil when empty.
func optionalGender(v string) *int {
	if v == "" {
		return nil
	}
	g := genderNumber(v)
	return &g
}

// genderNumber reads gender text: one digit, anything else is -1, for the
// gender rule to refuse.
func genderNumber(v string) int {
	if len(v) == 1 && v[0] >= '0' && v[0] <= '9' {
		return int(v[0] - '0')
	}
	return -1
}

func invalidField(field, why string) *api.Error {
	return api.Errorf(api.CodeInvalidRequest, "%s: %s", field, why)
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// jsonString decodes an optional JSON string ("" when absent or null).
func jsonString(field string, raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalidField(field, "must be a string")
	}
	return s, nil
}

// jsonNumberText returns the text of an optional number that may also come
// as a string (rawData sends gender as a number, forms as text).
func jsonNumberText(field string, raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	if raw[0] == '"' {
		return jsonString(field, raw)
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", invalidField(field, "must be a number")
	}
	return n.String(), nil
}

// text validates an optional free-text field by the profile's text rule
// (UTF-8, at most maxRunes characters, no control characters). nil when
// empty.
func text(field, v string, maxRunes int) (*string, error) {
	if v == "" {
		return nil, nil
	}
	if err := identity.CheckText(field, v, maxRunes); err != nil {
		return nil, err
	}
	return &v, nil
}

// isVisibleASCII reports whether s is all printable ASCII, no spaces.
func isVisibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}
