package httpapi

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// Account input limits. Identity owns the username and password rules
// (3-32 characters, 8-128 bytes); the gateway only refuses what can never
// pass them, before it costs a round trip or a password hash.
const (
	maxUsernameBytes  = 64
	maxPasswordBytes  = 128
	maxBindTokenBytes = 256
	// maxEchoedNameBytes bounds an unknown member name quoted back in a
	// problem detail: longer than any field name, far shorter than a body.
	maxEchoedNameBytes = 64
)

func (s *server) registerAccounts(v1 *gin.RouterGroup) {
	v1.POST("/auth/register", s.ipLimit, s.register)
	v1.POST("/auth/password/login", s.ipLimit, s.passwordLogin)
	v1.POST("/auth/bind", s.ipLimit, s.bind)

	me := v1.Group("/me", s.liveToken)
	me.PATCH("", s.updateMe)
	me.POST("/phone", s.setPhone)
	me.DELETE("/identities/:id", s.deleteIdentity)
}

// register creates a username/password account, with a WeChat identity
// attached when a bind_token or code comes along, and logs it in.
func (s *server) register(c *gin.Context) {
	f, err := bodyFields(c, "username", "password", "bind_token", "code", "app")
	if err != nil {
		s.fail(c, err)
		return
	}
	req := identity.RegisterRequest{Username: f["username"], Password: f["password"]}
	if req.WeChatProof, err = credentialsAndProof(f, false); err != nil {
		s.fail(c, err)
		return
	}
	// A new password must be text: invalid UTF-8 becomes U+FFFD on the way
	// to identity (JSON decoding here, or encoding to NATS), so different
	// passwords would be set as one. Logins take the password as it comes:
	// it turns into the same text it did when it was set.
	if pw := f["password"]; !utf8.ValidString(pw) || strings.ContainsRune(pw, utf8.RuneError) {
		s.fail(c, invalidField("password", "must be valid UTF-8 (and without U+FFFD, which stands for invalid bytes)"))
		return
	}
	s.login(c, api.KindPassword, http.StatusCreated, func(ctx context.Context) (identity.LoginResult, error) {
		return s.identity.Register(ctx, req)
	})
}

// passwordLogin logs in by username and password.
func (s *server) passwordLogin(c *gin.Context) {
	f, err := bodyFields(c, "username", "password")
	if err != nil {
		s.fail(c, err)
		return
	}
	if _, err := credentialsAndProof(f, false); err != nil {
		s.fail(c, err)
		return
	}
	// The client IP keys identity's failed-password limit, so a guesser
	// elsewhere cannot lock the user out.
	req := identity.PasswordLoginRequest{Username: f["username"], Password: f["password"], ClientIP: c.ClientIP()}
	s.login(c, api.KindPassword, http.StatusOK, func(ctx context.Context) (identity.LoginResult, error) {
		return s.identity.PasswordLogin(ctx, req)
	})
}

// bind attaches a WeChat identity (a bind_token from wechat_not_bound, or a
// fresh code) to the account the password proves, and logs it in.
func (s *server) bind(c *gin.Context) {
	f, err := bodyFields(c, "username", "password", "bind_token", "code", "app")
	if err != nil {
		s.fail(c, err)
		return
	}
	// The client IP keys identity's failed-password limit, as for a login.
	req := identity.BindRequest{Username: f["username"], Password: f["password"], ClientIP: c.ClientIP()}
	if req.WeChatProof, err = credentialsAndProof(f, true); err != nil {
		s.fail(c, err)
		return
	}
	s.login(c, api.KindPassword, http.StatusOK, func(ctx context.Context) (identity.LoginResult, error) {
		return s.identity.Bind(ctx, req)
	})
}

// credentialsAndProof checks the shape of username, password and, when
// present in f, the WeChat proof (bind_token or code, not both; required
// when needProof).
func credentialsAndProof(f map[string]string, needProof bool) (identity.WeChatProof, error) {
	var p identity.WeChatProof
	if err := required("username", f["username"], maxUsernameBytes); err != nil {
		return p, err
	}
	if u := f["username"]; !utf8.ValidString(u) || strings.ContainsFunc(u, unicode.IsControl) {
		return p, invalidField("username", "must be text without control characters")
	}
	if err := required("password", f["password"], maxPasswordBytes); err != nil {
		return p, err
	}
	p = identity.WeChatProof{BindToken: f["bind_token"], Code: f["code"]}
	if err := opaque("bind_token", p.BindToken, maxBindTokenBytes); err != nil {
		return p, err
	}
	if err := opaque("code", p.Code, maxCodeBytes); err != nil {
		return p, err
	}
	switch {
	case p.BindToken != "" && p.Code != "":
		return p, api.Errorf(api.CodeInvalidRequest, "bind_token, code: send one of them, not both")
	case needProof && p.BindToken == "" && p.Code == "":
		return p, api.Errorf(api.CodeInvalidRequest, "bind_token or code is required: the WeChat identity to bind")
	}
	if err := appName(f["app"]); err != nil {
		return p, err
	}
	p.App = f["app"]
	return p, nil
}

// updateMe changes the caller's profile. The body is a JSON merge patch
// (RFC 7396): a field left out stays, null or "" clears it.
func (s *server) updateMe(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	req, err := parseProfilePatch(c.GetHeader("Content-Type"), body, time.Now())
	if err != nil {
		s.fail(c, err)
		return
	}
	req.UserID = middleware.ClaimsOf(c).Subject
	s.answerUser(c, callTimeout, func(ctx context.Context) (api.User, error) { return s.identity.UpdateUser(ctx, req) })
}

// profileFields are the fields PATCH /api/v1/me accepts.
var profileFields = []string{"nickname", "avatar_url", "gender", "language", "city", "province", "country",
	"email", "date_of_birth", "description"}

// parseProfilePatch validates a profile patch into the identity request
// (UserID left empty). now bounds the date of birth.
func parseProfilePatch(contentType string, body []byte, now time.Time) (identity.UserUpdateRequest, error) {
	var req identity.UserUpdateRequest
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || (mt != "application/json" && mt != "application/merge-patch+json") {
		return req, api.Errorf(api.CodeInvalidRequest, "Content-Type must be application/json or application/merge-patch+json")
	}
	raw, err := jsonObject(body)
	if err != nil {
		return req, err
	}
	if len(raw) == 0 {
		return req, api.Errorf(api.CodeInvalidRequest, "nothing to update: send at least one of %s", strings.Join(profileFields, ", "))
	}
	// Refuse what we would otherwise silently drop: a typo, or a field such
	// as username or phone_number that has its own route or none.
	for name := range raw {
		if !slices.Contains(profileFields, name) {
			return req, invalidField(echoedName(name), "unknown or read-only field; updatable: "+strings.Join(profileFields, ", "))
		}
	}

	str := func(field string) (*string, error) {
		v, ok := raw[field]
		if !ok {
			return nil, nil
		}
		s, err := jsonString(field, v)
		return &s, err
	}
	p := &req.Profile
	for _, f := range []struct {
		name string
		dst  **string
	}{
		{"nickname", &p.Nickname}, {"avatar_url", &p.AvatarURL}, {"language", &p.Language}, {"city", &p.City},
		{"province", &p.Province}, {"country", &p.Country}, {"email", &req.Email}, {"date_of_birth", &req.DateOfBirth},
		{"description", &req.Description},
	} {
		if *f.dst, err = str(f.name); err != nil {
			return req, err
		}
	}
	if v, ok := raw["gender"]; ok {
		g := 0 // null clears to unknown
		if !isNull(v) {
			t, err := jsonNumberText("gender", v)
			if err != nil {
				return req, err
			}
			g = genderNumber(t)
		}
		p.Gender = &g
	}
	// The rules are identity's (the shared contract), checked here too so
	// a bad field is a 400 before the round trip.
	if err := identity.CheckUpdate(req, now); err != nil {
		return req, err
	}
	return req, nil
}

// echoedName quotes a client's member name for a problem detail, cut to
// maxEchoedNameBytes (ToValidUTF8 drops a rune the cut split).
func echoedName(name string) string {
	if len(name) <= maxEchoedNameBytes {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("%q…", strings.ToValidUTF8(name[:maxEchoedNameBytes], ""))
}

// setPhone stores the phone number behind a getPhoneNumber code.
func (s *server) setPhone(c *gin.Context) {
	code, app, err := codeAndApp(c, "getPhoneNumber")
	if err != nil {
		s.fail(c, err)
		return
	}
	req := identity.UserPhoneRequest{UserID: middleware.ClaimsOf(c).Subject, Code: code, App: app}
	s.answerUser(c, wechatCallTimeout, func(ctx context.Context) (api.User, error) { return s.identity.SetPhone(ctx, req) })
}

// deleteIdentity unbinds one of the caller's identities; identity refuses
// the last way to log in (409 last_login_method).
func (s *server) deleteIdentity(c *gin.Context) {
	id, err := pathUUID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	err = s.identity.DeleteIdentity(ctx, identity.IdentityDeleteRequest{UserID: middleware.ClaimsOf(c).Subject, IdentityID: id})
	cancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// pathUUID reads a UUID path parameter in its canonical form.
func pathUUID(c *gin.Context, name string) (string, error) { return uuidField(name, c.Param(name)) }

// uuidField reads a UUID in its canonical form (lower-cased).
func uuidField(name, v string) (string, error) {
	id, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		return "", invalidField(name, "must be a UUID")
	}
	return id.String(), nil
}

// codeAndApp reads a body of a WeChat code (required: code_missing, naming
// from where) and an optional app name.
func codeAndApp(c *gin.Context, from string) (code, app string, err error) {
	f, err := bodyFields(c, "code", "app")
	if err != nil {
		return "", "", err
	}
	if f["code"] == "" {
		return "", "", api.Errorf(api.CodeCodeMissing, "code is required: send the code from %s", from)
	}
	if err := opaque("code", f["code"], maxCodeBytes); err != nil {
		return "", "", err
	}
	if err := appName(f["app"]); err != nil {
		return "", "", err
	}
	return f["code"], f["app"], nil
}

// appName checks the optional app name (a configured app; "" = default).
func appName(v string) error {
	if len(v) > maxAppBytes {
		return invalidField("app", fmt.Sprintf("must be at most %d bytes", maxAppBytes))
	}
	_, err := text("app", v, maxAppBytes)
	return err
}
