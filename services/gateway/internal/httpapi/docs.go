package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/shared/api"
)

// openAPIJSON is the OpenAPI 3.1 description of every route, written by
// hand; TestOpenAPIMatchesRoutes keeps it in step with the router.
//
//go:embed openapi.json
var openAPIJSON []byte

// docsUI is the /docs page and its assets: no CDN, so the page works
// offline and the CSP can forbid every other origin.
//
//go:embed docsui/index.html docsui/docs.js docsui/docs.css
var docsUI embed.FS

// docsCSP allows the page its own script, styles and openapi.json, nothing
// else; the renderer builds the DOM without inline script or style.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// staticFile is an embedded file ready to serve.
type staticFile struct {
	body        []byte
	contentType string
	etag        string
}

func newStaticFile(body []byte, contentType string) staticFile {
	sum := sha256.Sum256(body)
	return staticFile{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// serve answers the file, or 304 when the client has this version. The
// files change only with the binary, so a short cache plus the ETag is
// enough.
func (f staticFile) serve(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	// http.ServeContent handles If-None-Match, HEAD and ranges.
	http.ServeContent(c.Writer, c.Request, "", time.Time{}, bytes.NewReader(f.body))
}

func mustRead(fsys embed.FS, name string) []byte {
	b, err := fsys.ReadFile(name)
	if err != nil {
		panic("httpapi: embedded " + name + " missing: " + err.Error())
	}
	return b
}

func (s *server) registerDocs(r *gin.Engine) {
	if !json.Valid(openAPIJSON) {
		panic("httpapi: embedded openapi.json is not valid JSON")
	}
	spec := newStaticFile(openAPIJSON, "application/json")
	page := newStaticFile(mustRead(docsUI, "docsui/index.html"), "text/html; charset=utf-8")
	assets := map[string]staticFile{
		"docs.js":  newStaticFile(mustRead(docsUI, "docsui/docs.js"), "text/javascript; charset=utf-8"),
		"docs.css": newStaticFile(mustRead(docsUI, "docsui/docs.css"), "text/css; charset=utf-8"),
	}

	r.GET("/openapi.json", func(c *gin.Context) {
		c.Header("Content-Type", spec.contentType)
		spec.serve(c)
	})
	r.GET("/docs", func(c *gin.Context) {
		c.Header("Content-Type", page.contentType)
		c.Header("Content-Security-Policy", docsCSP)
		c.Header("Referrer-Policy", "no-referrer")
		page.serve(c)
	})
	r.GET("/docs/assets/:name", serveAssets(assets))
}

// serveAssets answers GET …/:name with the embedded file of that name, or a
// 404 problem.
func serveAssets(assets map[string]staticFile) gin.HandlerFunc {
	return func(c *gin.Context) {
		f, ok := assets[c.Param("name")]
		if !ok {
			problem.Write(c, problem.New(api.CodeNotFound, "no such asset", middleware.RequestIDOf(c)))
			return
		}
		c.Header("Content-Type", f.contentType)
		f.serve(c)
	}
}
