package wechat

import (
	"context"
	"fmt"
	"net/url"
)

// OAQRCode is a temporary parametric QR code of an official account.
type OAQRCode struct {
	Ticket        string // WeChat's ticket: showqrcode?ticket= is the image
	ExpireSeconds int
	URL           string // the text the QR code encodes
}

// CreateOAQRCode makes a temporary QR_STR_SCENE code (cgi-bin/qrcode/create)
// whose follow or scan pushes scene back to the server URL.
func (c *Client) CreateOAQRCode(ctx context.Context, accessToken, scene string, expireSeconds int) (OAQRCode, error) {
	var r struct {
		Ticket        string  `json:"ticket"`
		ExpireSeconds flexInt `json:"expire_seconds"`
		URL           string  `json:"url"`
	}
	body := map[string]any{
		"expire_seconds": expireSeconds,
		"action_name":    "QR_STR_SCENE",
		"action_info":    map[string]any{"scene": map[string]string{"scene_str": scene}},
	}
	q := url.Values{"access_token": {accessToken}}
	if err := c.post(ctx, "/cgi-bin/qrcode/create", q, body, &r); err != nil {
		return OAQRCode{}, err
	}
	if r.Ticket == "" || r.URL == "" {
		return OAQRCode{}, fmt.Errorf("%w: qrcode/create answered no ticket or url", ErrUnavailable)
	}
	return OAQRCode{Ticket: r.Ticket, ExpireSeconds: int(r.ExpireSeconds), URL: r.URL}, nil
}

// OAFollower is the answer of cgi-bin/user/info: since 2021 no nickname
// or avatar, but the unionid when the account is bound to an Open
// Platform account.
type OAFollower struct {
	Subscribed bool
	OpenID     string
	UnionID    string
	Language   string
}

// OAUserInfo reads a follower of an official account (cgi-bin/user/info).
func (c *Client) OAUserInfo(ctx context.Context, accessToken, openid string) (OAFollower, error) {
	var r struct {
		Subscribe flexInt `json:"subscribe"`
		OpenID    string  `json:"openid"`
		UnionID   string  `json:"unionid"`
		Language  string  `json:"language"`
	}
	q := url.Values{"access_token": {accessToken}, "openid": {openid}, "lang": {"zh_CN"}}
	if err := c.get(ctx, "/cgi-bin/user/info", q, &r); err != nil {
		return OAFollower{}, err
	}
	if r.OpenID == "" {
		return OAFollower{}, fmt.Errorf("%w: user/info answered no openid", ErrUnavailable)
	}
	return OAFollower{Subscribed: r.Subscribe == 1, OpenID: r.OpenID, UnionID: r.UnionID, Language: r.Language}, nil
}

// OAQRImageURL is the image of a parametric QR code's ticket
// (mp.weixin.qq.com/cgi-bin/showqrcode).
func OAQRImageURL(mpBase, ticket string) string {
	return mpBase + "/cgi-bin/showqrcode?ticket=" + url.QueryEscape(ticket)
}
