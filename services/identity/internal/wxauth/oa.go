package wxauth

import (
	"context"

	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/wechat"
)

// Names of the official account's WeChat calls, in logs.
const (
	callQRCodeCreate = "qrcode/create"
	callOAUserInfo   = "user/info"
)

// OAQRCode makes a temporary QR_STR_SCENE code of the official account app.
func (e *Exchanger) OAQRCode(ctx context.Context, app apps.App, scene string, expireSeconds int) (wechat.OAQRCode, error) {
	var qr wechat.OAQRCode
	err := e.withServerToken(ctx, app, callQRCodeCreate, func(token string) (err error) {
		qr, err = e.wc.CreateOAQRCode(ctx, token, scene, expireSeconds)
		return err
	})
	return qr, err
}

// OAFollower reads a follower (cgi-bin/user/info): its unionid joins the
// official account's openid to the person's other apps.
func (e *Exchanger) OAFollower(ctx context.Context, app apps.App, openid string) (wechat.OAFollower, error) {
	var f wechat.OAFollower
	err := e.withServerToken(ctx, app, callOAUserInfo, func(token string) (err error) {
		f, err = e.wc.OAUserInfo(ctx, token, openid)
		return err
	})
	return f, err
}
