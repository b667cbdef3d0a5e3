// Package api holds the parts of the wxlogin wire contract that every service
// shares: the stable error codes (docs/api.md) and the error type that carries
// them across NATS.
package api

import (
	"errors"
	"fmt"
)

// Code is a stable snake_case error code. Clients branch on it; it never changes meaning.
type Code string

// The error codes of docs/api.md. The HTTP status for each lives in the gateway.
const (
	CodeInvalidRequest     Code = "invalid_request"
	CodeCodeMissing        Code = "code_missing"
	CodeWechatCodeInvalid  Code = "wechat_code_invalid"
	CodeWechatCodeUsed     Code = "wechat_code_used"
	CodeInvalidCredentials Code = "invalid_credentials"
	CodeTokenInvalid       Code = "token_invalid"
	CodeTokenExpired       Code = "token_expired"
	CodeTokenRevoked       Code = "token_revoked"
	CodeRefreshTokenReused Code = "refresh_token_reused"
	CodeWechatNotBound     Code = "wechat_not_bound"
	CodeForbidden          Code = "forbidden"
	CodeUserDisabled       Code = "user_disabled"
	CodeNotFound           Code = "not_found"
	CodeQRTicketNotFound   Code = "qr_ticket_not_found"
	CodeQRTicketExpired    Code = "qr_ticket_expired"
	// CodeQRWrongBrowser: the QR callback came from a browser without the
	// ticket's cookie; only the browser that showed the QR code may finish it.
	CodeQRWrongBrowser Code = "qr_wrong_browser"
	// CodeSignatureInvalid: a request to the official account's server URL
	// whose WeChat signature does not check out.
	CodeSignatureInvalid Code = "signature_invalid"
	// CodeInvalidRedirectURI: the in-WeChat login's redirect_uri matches no
	// prefix of WXLOGIN_REDIRECT_URIS.
	CodeInvalidRedirectURI Code = "invalid_redirect_uri"
	// CodeLoginCodeInvalid: a wxlogin_code that is unknown, expired or spent.
	CodeLoginCodeInvalid Code = "login_code_invalid"
	// CodeSnapshotUser: WeChat answered a snapshot-page (Moments preview)
	// user, a virtual openid that must never become an account.
	CodeSnapshotUser  Code = "snapshot_user"
	CodeUsernameTaken Code = "username_taken"
	CodeIdentityBound Code = "identity_already_bound"
	CodeLastIdentity  Code = "last_login_method"
	// CodeLastAdmin: the change would leave no enabled administrator.
	CodeLastAdmin          Code = "last_admin"
	CodeRateLimited        Code = "rate_limited"
	CodeWechatRateLimited  Code = "wechat_rate_limited"
	CodeWechatError        Code = "wechat_error"
	CodeWechatUnavailable  Code = "wechat_unavailable"
	CodeServiceUnavailable Code = "service_unavailable"
	CodeInternal           Code = "internal_error"
)

// Error is an error with a contract code and a message safe to show a client.
// Data carries a small structured payload some codes need (the bind_token of
// wechat_not_bound); it travels as the body of the NATS error reply.
type Error struct {
	Code    Code
	Message string
	Data    map[string]string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf builds an *Error with a client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the contract code of err, or CodeInternal when err carries none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
