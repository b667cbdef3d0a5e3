package httpapi

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
)

// demoHTML is the QR-login demo page: one self-contained file, inline CSS
// and JS, nothing from a CDN.
//
//go:embed demo.html
var demoHTML []byte

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

// demoCSP is the demo's Content-Security-Policy: its own inline code, API
// calls to this origin, WeChat's QR page (and our callback, where WeChat
// sends the frame) in the iframe, avatars from anywhere.
func demoCSP(wechatOpenBase string) string {
	frames := "'self'"
	if u, err := url.Parse(wechatOpenBase); err == nil && u.Scheme != "" && u.Host != "" {
		frames += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'none'; script-src " + inlineHashes(string(demoHTML), "script") +
		"; style-src " + inlineHashes(string(demoHTML), "style") +
		"; img-src https: http: data:; connect-src 'self'; frame-src " + frames +
		"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// demo serves the QR-login demo page.
func (s *server) demo(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", s.web.demoCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "text/html; charset=utf-8", demoHTML)
}
