package httpapi

import (
	"bytes"
	_ "embed"
	"html/template"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

//go:embed callback.html
var callbackHTML string

var callbackTemplate = template.Must(template.New("callback").Parse(callbackHTML))

// callbackContent is what the callback page says, in Chinese and English.
// Status is the page's data-status: confirmed, denied, not_bound, expired
// or error.
type callbackContent struct {
	Status             string
	TitleZh, TitleEn   string
	DetailZh, DetailEn string
	Code               string // the error code, for a person to quote
	RequestID          string
	// Retry, when set, is the relative URL the page navigates to at once
	// (see wrongBrowserPage).
	Retry string
}

var (
	pageConfirmed = callbackContent{Status: session.QRConfirmed,
		TitleZh: "登录成功", TitleEn: "Login complete",
		DetailZh: "请回到发起登录的网页，它会自动继续。", DetailEn: "Go back to the page where you started: it carries on by itself."}
	pageDenied = callbackContent{Status: session.QRDenied,
		TitleZh: "已取消", TitleEn: "Login cancelled",
		DetailZh: "您拒绝了本次登录。", DetailEn: "The login was not allowed."}
	pageNotBound = callbackContent{Status: session.QRNotBound,
		TitleZh: "微信账号尚未关联", TitleEn: "WeChat account not linked yet",
		DetailZh: "该微信账号还没有关联账号。请回到发起登录的网页，注册新账号或登录已有账号以完成关联。",
		DetailEn: "This WeChat account is not linked to an account yet. Go back to the page where you started to create an account, or sign in to yours, and link it."}
	pageNotFound = callbackContent{Status: "error",
		TitleZh: "二维码无效", TitleEn: "Unknown QR code",
		DetailZh: "该二维码不存在或已被使用，请刷新网页后重新扫码。", DetailEn: "This QR code does not exist or has been used. Reload the page and scan again."}
	pageExpired = callbackContent{Status: "expired",
		TitleZh: "二维码已过期", TitleEn: "QR code expired",
		DetailZh: "请刷新网页后重新扫码。", DetailEn: "Reload the page and scan the new code."}
	pageBadRequest = callbackContent{Status: "error",
		TitleZh: "请求无效", TitleEn: "Invalid request",
		DetailZh: "回调参数不正确。", DetailEn: "The callback's parameters are malformed."}
	pageWrongBrowser = callbackContent{Status: "error",
		TitleZh: "请在显示二维码的浏览器中完成登录", TitleEn: "Finish the login in the browser that showed the QR code",
		DetailZh: "本次登录是在另一个浏览器中发起的，此页面无法完成它。请回到显示二维码的浏览器，重新扫码。",
		DetailEn: "This login was started in another browser, and this page cannot complete it. Go back to the browser that showed the QR code and scan it there.",
		Code:     string(api.CodeQRWrongBrowser)}
	pageUnavailable = callbackContent{Status: "error",
		TitleZh: "服务暂不可用", TitleEn: "Service unavailable",
		DetailZh: "请稍后重试。", DetailEn: "Please try again in a moment."}
)

// pageForStatus is the page of a ticket that is already complete.
func pageForStatus(status string) callbackContent {
	switch status {
	case session.QRConfirmed:
		return pageConfirmed
	case session.QRDenied:
		return pageDenied
	case session.QRNotBound:
		return pageNotBound
	}
	return pageNotFound
}

// pageFailed is the page of a failed code exchange.
func pageFailed(p problem.Problem) callbackContent {
	return callbackContent{Status: "error",
		TitleZh: "登录失败", TitleEn: "Login failed",
		DetailZh: "微信登录未能完成，请刷新网页后重试。", DetailEn: p.Detail,
		Code: string(p.Code)}
}

// callbackPage answers the callback's HTML page. It embeds nothing from
// outside and is never cached: its URL holds a one-time code.
func (s *server) callbackPage(c *gin.Context, status int, page callbackContent) {
	page.RequestID = middleware.RequestIDOf(c)
	var buf bytes.Buffer
	if err := callbackTemplate.Execute(&buf, page); err != nil {
		s.log.LogAttrs(c.Request.Context(), slog.LevelError, "render the callback page",
			slog.String("request_id", page.RequestID), slog.Any("error", err))
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
	c.Abort()
}
