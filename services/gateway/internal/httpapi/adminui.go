package httpapi

import (
	"embed"
	"net/url"

	"github.com/gin-gonic/gin"
)

// adminUI is the admin console (GET /admin): a page, its script and its
// stylesheet, all served from the binary. The script calls the public API
// with the admin's tokens, which it keeps in memory only.
//
//go:embed adminui/index.html adminui/admin.js adminui/admin.css
var adminUI embed.FS

// adminCSP is the console's Content-Security-Policy: script and style from
// this origin only (no inline code), API calls to this origin, and frames
// only for the QR sign-in (WeChat's QR page, then our callback page in the
// same frame). Images may come from any https origin because avatars live
// on WeChat's CDN (thirdwx.qlogo.cn and others); an image cannot run code.
func adminCSP(wechatOpenBase string) string {
	frames := "'self'"
	if u, err := url.Parse(wechatOpenBase); err == nil && u.Scheme != "" && u.Host != "" {
		frames += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; connect-src 'self'; " +
		"frame-src " + frames + "; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

func (s *server) registerAdminConsole(r *gin.Engine, wechatOpenBase string) {
	csp := adminCSP(wechatOpenBase)
	page := newStaticFile(mustRead(adminUI, "adminui/index.html"), "text/html; charset=utf-8")
	assets := map[string]staticFile{
		"admin.js":  newStaticFile(mustRead(adminUI, "adminui/admin.js"), "text/javascript; charset=utf-8"),
		"admin.css": newStaticFile(mustRead(adminUI, "adminui/admin.css"), "text/css; charset=utf-8"),
	}
	r.GET("/admin", func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Type", page.contentType)
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		page.serve(c)
	})
	r.GET("/admin/assets/:name", serveAssets(assets))
}
