// Package problem turns contract errors into RFC 9457 problem details: the
// one table from api.Code to HTTP status lives here, and so does the rule that
// an unexpected error is logged once and never shown to a client.
package problem

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

// ContentType is the media type of every error response.
const ContentType = "application/problem+json"

// TypeBase prefixes the code to form the problem "type" URI.
const TypeBase = "https://wxlogin.dev/errors/"

// Problem is an RFC 9457 problem details object with our extension members.
type Problem struct {
	Type      string   `json:"type"`
	Title     string   `json:"title"`
	Status    int      `json:"status"`
	Detail    string   `json:"detail"`
	Code      api.Code `json:"code"`
	RequestID string   `json:"request_id"`
	// BindToken lets an unknown WeChat user bind or register (wechat_not_bound).
	BindToken string `json:"bind_token,omitempty"`
	// Nickname and AvatarURL go with BindToken: the WeChat user's, so the
	// person about to bind sees whose WeChat account it is.
	Nickname  string `json:"nickname,omitempty"`
	AvatarURL string `json:"avatar_url,omitempty"`
	// Down lists what is not ready (/readyz).
	Down []string `json:"down,omitempty"`

	// retryAfter is sent as the Retry-After header (seconds) when > 0.
	retryAfter int
}

type entry struct {
	status int
	title  string
	// retryAfter is the default Retry-After, in seconds, for 429s.
	retryAfter int
}

// table is the contract's code -> status mapping (docs/api.md). A code that is
// not here is answered as internal_error.
var table = map[api.Code]entry{
	api.CodeInvalidRequest:     {http.StatusBadRequest, "Invalid request", 0},
	api.CodeCodeMissing:        {http.StatusBadRequest, "Code missing", 0},
	api.CodeWechatCodeInvalid:  {http.StatusUnauthorized, "WeChat code invalid", 0},
	api.CodeWechatCodeUsed:     {http.StatusUnauthorized, "WeChat code already used", 0},
	api.CodeInvalidCredentials: {http.StatusUnauthorized, "Invalid credentials", 0},
	api.CodeTokenInvalid:       {http.StatusUnauthorized, "Token invalid", 0},
	api.CodeTokenExpired:       {http.StatusUnauthorized, "Token expired", 0},
	api.CodeTokenRevoked:       {http.StatusUnauthorized, "Token revoked", 0},
	api.CodeRefreshTokenReused: {http.StatusUnauthorized, "Refresh token reused", 0},
	api.CodeWechatNotBound:     {http.StatusForbidden, "WeChat account not bound", 0},
	api.CodeForbidden:          {http.StatusForbidden, "Forbidden", 0},
	api.CodeUserDisabled:       {http.StatusForbidden, "User disabled", 0},
	api.CodeNotFound:           {http.StatusNotFound, "Not found", 0},
	api.CodeQRTicketNotFound:   {http.StatusNotFound, "QR ticket not found", 0},
	api.CodeQRTicketExpired:    {http.StatusGone, "QR ticket expired", 0},
	api.CodeQRWrongBrowser:     {http.StatusForbidden, "QR login from another browser", 0},
	api.CodeSignatureInvalid:   {http.StatusUnauthorized, "Signature invalid", 0},
	api.CodeInvalidRedirectURI: {http.StatusBadRequest, "Redirect URI not allowed", 0},
	api.CodeLoginCodeInvalid:   {http.StatusBadRequest, "Login code invalid", 0},
	api.CodeSnapshotUser:       {http.StatusForbidden, "WeChat snapshot-page user", 0},
	api.CodeUsernameTaken:      {http.StatusConflict, "Username taken", 0},
	api.CodeIdentityBound:      {http.StatusConflict, "Identity already bound", 0},
	api.CodeLastIdentity:       {http.StatusConflict, "Last login method", 0},
	api.CodeLastAdmin:          {http.StatusConflict, "Last administrator", 0},
	api.CodeRateLimited:        {http.StatusTooManyRequests, "Rate limited", 1},
	// WeChat's 45011 is a per-minute quota.
	api.CodeWechatRateLimited:  {http.StatusTooManyRequests, "WeChat rate limited", 60},
	api.CodeWechatError:        {http.StatusBadGateway, "WeChat error", 0},
	api.CodeWechatUnavailable:  {http.StatusServiceUnavailable, "WeChat unavailable", 0},
	api.CodeServiceUnavailable: {http.StatusServiceUnavailable, "Service unavailable", 0},
	api.CodeInternal:           {http.StatusInternalServerError, "Internal error", 0},
}

// Status returns the HTTP status of code (500 for a code not in the contract).
func Status(code api.Code) int {
	if e, ok := table[code]; ok {
		return e.status
	}
	return http.StatusInternalServerError
}

const internalDetail = "an internal error occurred; quote the request id if you report it"

// New returns the problem for code with detail (the title when empty).
func New(code api.Code, detail, requestID string) Problem {
	e, ok := table[code]
	if !ok || code == api.CodeInternal {
		return Internal(requestID)
	}
	if detail == "" {
		detail = e.title
	}
	return Problem{
		Type:       TypeBase + string(code),
		Title:      e.title,
		Status:     e.status,
		Detail:     detail,
		Code:       code,
		RequestID:  requestID,
		retryAfter: e.retryAfter,
	}
}

// Internal is the generic 500: nothing about the cause reaches the client.
func Internal(requestID string) Problem {
	e := table[api.CodeInternal]
	return Problem{
		Type:      TypeBase + string(api.CodeInternal),
		Title:     e.title,
		Status:    e.status,
		Detail:    internalDetail,
		Code:      api.CodeInternal,
		RequestID: requestID,
	}
}

// For translates err. unexpected is true when err carries no contract code
// we may show (a plain error, internal_error or an unknown code): the caller
// must log it, and the client gets the generic 500.
func For(err error, requestID string) (p Problem, unexpected bool) {
	var e *api.Error
	if !errors.As(err, &e) {
		return Internal(requestID), true
	}
	if _, ok := table[e.Code]; !ok || e.Code == api.CodeInternal {
		return Internal(requestID), true
	}
	p = New(e.Code, e.Message, requestID)
	if e.Code == api.CodeWechatNotBound {
		p.BindToken, p.Nickname, p.AvatarURL = e.Data[identity.DataBindToken], e.Data[identity.DataNickname], e.Data[identity.DataAvatarURL]
	}
	if s, ok := e.Data["retry_after"]; ok && p.Status == http.StatusTooManyRequests {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			p.retryAfter = n
		}
	}
	return p, false
}

// Fail answers the request with the problem for err, logging err first if it
// is unexpected, and stops the handler chain.
func Fail(c *gin.Context, log *slog.Logger, err error) {
	rid := natsrpc.RequestID(c.Request.Context())
	p, unexpected := For(err, rid)
	if unexpected {
		log.LogAttrs(c.Request.Context(), slog.LevelError, "request failed",
			slog.String("request_id", rid), slog.String("route", c.FullPath()), slog.Any("error", err))
	}
	Write(c, p)
}

// Write sends p and stops the handler chain.
func Write(c *gin.Context, p Problem) {
	body, err := json.Marshal(p)
	if err != nil {
		// Unreachable: Problem holds only strings and ints.
		body = []byte(`{"code":"internal_error","status":500}`)
	}
	if p.retryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(p.retryAfter))
	}
	c.Header("Cache-Control", "no-store")
	c.Data(p.Status, ContentType, body)
	c.Abort()
}
