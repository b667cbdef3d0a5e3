package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/ratelimit"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

// Paths of the introspection endpoint and the RFC 8414 metadata.
const (
	introspectPath = "/api/v1/auth/introspect"
	metadataPath   = "/.well-known/oauth-authorization-server"
	jwksPath       = "/.well-known/jwks.json"
)

// maxIntrospectBody bounds the body: a token (at most
// jwtverify.MaxTokenLength) and a token_type_hint.
const maxIntrospectBody = 8 << 10

// IntrospectOptions configure POST /api/v1/auth/introspect (RFC 7662) and
// GET /.well-known/oauth-authorization-server (RFC 8414).
type IntrospectOptions struct {
	// Clients are the resource servers allowed to introspect: client id →
	// secret (WXLOGIN_INTROSPECT_CLIENTS). None: every call is refused.
	Clients map[string]string
	// Limit limits introspections per client id (nil: no limit).
	Limit *ratelimit.Limiter
	// Issuer is the tokens' iss (WXLOGIN_JWT_ISSUER), the metadata's issuer.
	Issuer string
	// PublicURL is the gateway's external base URL, for the endpoint URLs.
	PublicURL string
	// JWKS says whether /.well-known/jwks.json publishes keys (EdDSA; with
	// HS256 there is nothing to publish and the metadata names no jwks_uri).
	JWKS bool
}

// introspection holds the client secrets as SHA-256 digests, so comparing
// one takes the same time whatever the lengths.
type introspection struct {
	clients  map[string][32]byte
	limit    *ratelimit.Limiter
	metadata gin.H
}

func newIntrospection(o IntrospectOptions) *introspection {
	in := &introspection{clients: make(map[string][32]byte, len(o.Clients)), limit: o.Limit}
	for id, secret := range o.Clients {
		in.clients[id] = sha256.Sum256([]byte(secret))
	}
	in.metadata = gin.H{
		"issuer":                 o.Issuer,
		"introspection_endpoint": o.PublicURL + introspectPath,
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic"},
		// Tokens are issued by wxlogin's own login routes, not an OAuth
		// authorization or token endpoint; RFC 8414 requires the member.
		"response_types_supported": []string{},
		"service_documentation":    o.PublicURL + "/docs",
	}
	if o.JWKS {
		in.metadata["jwks_uri"] = o.PublicURL + jwksPath
	}
	return in
}

func (s *server) registerIntrospection(r *gin.Engine, v1 *gin.RouterGroup) {
	r.GET(metadataPath, s.metadata)
	v1.POST("/auth/introspect", s.introspect)
}

// metadata is the RFC 8414 authorization server metadata: where the keys
// and the introspection endpoint are, so API gateways configure themselves.
func (s *server) metadata(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, s.introspection.metadata)
}

var (
	errNoRevocationView = &api.Error{Code: api.CodeServiceUnavailable, Message: "the revocation list is not available; try again shortly"}
	errIntrospectClient = &api.Error{Code: api.CodeInvalidCredentials, Message: "introspection needs HTTP Basic authentication with a client of WXLOGIN_INTROSPECT_CLIENTS"}
	errIntrospectLimit  = &api.Error{Code: api.CodeRateLimited, Message: "too many introspections for this client; retry after the number of seconds in Retry-After"}
)

// introspect answers RFC 7662: is this access token in force right now?
// Answered from this gateway's keys and revocation view (no NATS round
// trip): active only for a token that verifies and is not revoked; 503
// while the view cannot tell, like the Bearer routes.
func (s *server) introspect(c *gin.Context) {
	client, ok := s.introspectClient(c)
	if !ok {
		// A wrong secret costs the caller's address, like a bad poll token.
		if !s.chargeIP(c) {
			return
		}
		c.Header("WWW-Authenticate", `Basic realm="wxlogin introspection", charset="UTF-8"`)
		s.fail(c, errIntrospectClient)
		return
	}
	if l := s.introspection.limit; l != nil {
		if ok, wait := l.Allow(client); !ok {
			e := *errIntrospectLimit
			e.Data = ipRateLimited(wait).Data
			s.fail(c, &e)
			return
		}
	}
	body, err := readBodyMax(c, maxIntrospectBody)
	if err != nil {
		s.fail(c, err)
		return
	}
	f, err := parseFields(c.GetHeader("Content-Type"), body, "token")
	if err != nil {
		s.fail(c, err)
		return
	}
	if f["token"] == "" {
		s.fail(c, invalidField("token", "is required"))
		return
	}
	c.Header("Cache-Control", "no-store")
	claims, err := s.keys.Verify(f["token"])
	if err == nil {
		err = s.liveCheck(claims)
	}
	switch api.CodeOf(err) {
	case api.CodeTokenInvalid, api.CodeTokenExpired, api.CodeTokenRevoked:
		c.JSON(http.StatusOK, gin.H{"active": false})
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{
		"active":     true,
		"token_type": "Bearer",
		"sub":        claims.Subject,
		"exp":        claims.ExpiresAt.Unix(),
		"iat":        claims.IssuedAt.Unix(),
		"iss":        claims.Issuer,
		"aud":        claims.Audience,
		"jti":        claims.ID,
		"client_id":  claims.ClientID,
		"sid":        claims.SessionID,
		"kind":       claims.Kind,
	})
}

// liveCheck is the revocation check of the live-token routes; without a
// revocation view it fails closed.
func (s *server) liveCheck(claims *jwtverify.Claims) error {
	if s.revocations == nil {
		return errNoRevocationView
	}
	return s.revocations.Check(claims)
}

// introspectClient returns the id of the client the Basic credentials
// authenticate. Secrets compare in constant time, and an unknown id costs
// the same comparison as a known one.
func (s *server) introspectClient(c *gin.Context) (string, bool) {
	id, secret, ok := c.Request.BasicAuth()
	if !ok || len(c.Request.Header.Values("Authorization")) != 1 {
		return "", false
	}
	// RFC 6749 section 2.3.1: both are form-encoded before Basic.
	if v, err := url.QueryUnescape(id); err == nil {
		id = v
	}
	if v, err := url.QueryUnescape(secret); err == nil {
		secret = v
	}
	want, known := s.introspection.clients[id]
	got := sha256.Sum256([]byte(secret))
	match := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	return id, known && match && strings.TrimSpace(id) != ""
}
