package httpapi

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	webclient "github.com/wxlogin/wxlogin/clients/web"
)

// demoHTML is the login demo page: inline CSS, and its script, demo.js,
// built on the browser client (clients/web) that the gateway serves too.
// Nothing comes from a CDN.
//
//go:embed demo.html
var demoHTML []byte

//go:embed demo.js
var demoJS []byte

// webClientPath is where pages load the browser client from.
const webClientPath = "/clients/web/wxlogin.js"

// inlineHashes returns the CSP source expressions ('sha256-...') of every
// <tag>...</tag> block in page.
func inlineHashes(page, tag string) string {
	var out []string
	open, end := "<"+tag+">", "</"+tag+">"
	for {
		i := strings.Index(page, open)
		if i < 0 {
			break
		}
		page = page[i+len(open):]
		j := strings.Index(page, end)
		if j < 0 {
			break
		}
		sum := sha256.Sum256([]byte(page[:j]))
		out = append(out, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		page = page[j+len(end):]
	}
	return strings.Join(out, " ")
}

// demoCSP is the demo's Content-Security-Policy: scripts from this origin
// only (demo.js and the client module, no inline code), its own inline
// style, API calls to this origin, WeChat's QR page (and our callback, where
// WeChat sends the frame) in the iframe, avatars from anywhere.
func demoCSP(wechatOpenBase string) string {
	frames := "'self'"
	if u, err := url.Parse(wechatOpenBase); err == nil && u.Scheme != "" && u.Host != "" {
		frames += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'none'; script-src 'self'; style-src " + inlineHashes(string(demoHTML), "style") +
		"; img-src https: http: data:; connect-src 'self'; frame-src " + frames +
		"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// registerDemo serves the demo page, its script, and the browser client,
// which any site may load as an ES module (CORS as for the API).
func (s *server) registerDemo(r *gin.Engine) {
	r.GET("/demo", s.demo)
	r.GET("/demo/assets/:name", serveAssets(map[string]staticFile{
		"demo.js": newStaticFile(demoJS, "text/javascript; charset=utf-8"),
	}))
	client := newStaticFile(webclient.Script, "text/javascript; charset=utf-8")
	r.GET(webClientPath, func(c *gin.Context) {
		c.Header("Content-Type", client.contentType)
		client.serve(c)
	})
}

// demo serves the demo page.
func (s *server) demo(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", s.web.demoCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "text/html; charset=utf-8", demoHTML)
}
