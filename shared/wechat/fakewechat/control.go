package fakewechat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The control endpoints let developers and tests written in any language
// drive the fake over HTTP: JSON in, JSON out, 400 with {"error"} on bad input.

const controlIndex = `fakewechat: a stand-in for the WeChat server APIs.

WeChat API (HTTP 200, JSON served as text/plain, errors as {"errcode","errmsg"}):
  GET  /sns/jscode2session              mini-program wx.login code exchange
  GET  /sns/oauth2/access_token         website, mobile app and official-account code exchange
                                        (is_snapshotuser 1 for a snapshot page; snsapi_base: no unionid)
  GET  /sns/userinfo                    profile behind an sns/oauth2 access token (48001 for snsapi_base)
  GET  /cgi-bin/token                   server access token (each call supersedes the last; it lives 5 more minutes)
  POST /cgi-bin/stable_token            server access token (same token while valid; force_refresh renews)
  POST /wxa/business/getuserphonenumber phone number behind a getPhoneNumber code

Website QR login pages (HTML):
  GET  /connect/qrconnect?appid&redirect_uri&response_type=code&scope=snsapi_login&state[&style=white][&login_type=jssdk&self_redirect=true|default]
                          the QR page (frameable): a QR code of the phone page's URL, and a link to it; once the
                          phone answers, it goes to redirect_uri?code=CODE&state=STATE (allow) or
                          redirect_uri?state=STATE (deny): itself, or the top window for login_type=jssdk
                          without self_redirect=true (WxLogin's iframe)
  GET  /connect/l/qrconnect?uuid=...
                          the QR page's long-poll: {"wx_errcode":408} waiting, 405/403 with "redirect_uri", 402 expired
  GET  /connect/confirm?uuid=...[&openid=...]
                          the phone page: pick or type a test user, then allow or deny
  POST /connect/confirm   form uuid, action=allow|deny, nickname?, openid?, unionid?, headimgurl?
                          -> 200 "done" page; the QR page goes on to the website;
                          each QR code answers once and expires after 5 minutes

Official account web authorization (the WeChat browser on a phone, HTML):
  GET  /connect/oauth2/authorize?appid&redirect_uri&response_type=code&scope=snsapi_userinfo|snsapi_base&state[&openid]
                          the "phone": checks the appid (an official account), redirect_uri on its
                          web-authorization domain, scope and state (at most 128 letters and digits);
                          pick or type a test user, then allow (continue for snsapi_base), deny, or
                          open as a Moments snapshot page
  POST /connect/oauth2/confirm
                          form query (the authorize query), action=allow|deny|snapshot, nickname?, openid?,
                          unionid?, headimgurl? -> 302 redirect_uri?code=CODE&state=STATE (deny: no code)

Control (JSON in and out):
  POST /fake/codes        {"appid", "openid"?, "unionid"?, "nickname"?, "headimgurl"?, "sex"?, "province"?, "city"?, "country"?}
                          -> 201 {"code", "openid", "unionid"}: a wx.login code (mini-program app) or an sns/oauth2 code
                          (web app, mobile app, official account with snsapi_userinfo)
  POST /fake/phone-codes  {"appid", "phone_number"} -> 201 {"code"}: a getPhoneNumber code ("13800138000", "+8613800138000", "+1 4155550100")
  POST /fake/errors       {"path"?, "errcode", "count"?} -> 204: the next count (default 1) calls of path (default any) answer errcode;
                          count 0 cancels the pending errors of path
  POST /fake/clock        {"advance": "6m"} -> 204: moves the fake clock forward
  GET  /fake/             this page
`

func (s *Server) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/fake/{$}", func(w http.ResponseWriter, r *http.Request) {
		if !allowMethod(w, r, http.MethodGet) {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, controlIndex)
	})
	mux.HandleFunc("/fake/codes", s.postCodes)
	mux.HandleFunc("/fake/phone-codes", s.postPhoneCodes)
	mux.HandleFunc("/fake/errors", s.postErrors)
	mux.HandleFunc("/fake/clock", s.postClock)
	mux.HandleFunc(controlPrefix, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such control endpoint; see GET /fake/"})
	})
}

type mintCodeRequest struct {
	AppID      string `json:"appid"`
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
	Nickname   string `json:"nickname"`
	HeadImgURL string `json:"headimgurl"`
	Sex        int    `json:"sex"`
	Province   string `json:"province"`
	City       string `json:"city"`
	Country    string `json:"country"`
}

type mintCodeResponse struct {
	Code    string `json:"code"`
	OpenID  string `json:"openid"`
	UnionID string `json:"unionid"`
}

func (s *Server) postCodes(w http.ResponseWriter, r *http.Request) {
	var req mintCodeRequest
	if !decodeControl(w, r, &req) {
		return
	}
	if req.AppID == "" {
		badRequest(w, "appid is required")
		return
	}
	code, u, err := s.MintCode(req.AppID, User{OpenID: req.OpenID, UnionID: req.UnionID, Nickname: req.Nickname,
		HeadImgURL: req.HeadImgURL, Sex: req.Sex, Province: req.Province, City: req.City, Country: req.Country})
	if err != nil {
		mintError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, mintCodeResponse{Code: code, OpenID: u.OpenID, UnionID: u.UnionID})
}

func (s *Server) postPhoneCodes(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AppID       string `json:"appid"`
		PhoneNumber string `json:"phone_number"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if req.AppID == "" {
		badRequest(w, "appid is required")
		return
	}
	code, err := s.MintPhoneCode(req.AppID, req.PhoneNumber)
	if err != nil {
		mintError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"code": code})
}

func (s *Server) postErrors(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path    string `json:"path"`
		ErrCode int    `json:"errcode"`
		Count   *int   `json:"count"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if req.Path != "" && !strings.HasPrefix(req.Path, "/") {
		req.Path = "/" + req.Path
	}
	if req.Path != "" && !slices.Contains(apiPaths, req.Path) {
		badRequest(w, fmt.Sprintf("path %q is not one of %s", req.Path, strings.Join(apiPaths, ", ")))
		return
	}
	count := 1
	if req.Count != nil {
		count = *req.Count
	}
	switch {
	case count < 0:
		badRequest(w, "count must be 0 (cancel) or more")
		return
	case count > 0 && req.ErrCode == 0:
		badRequest(w, "errcode is required and must not be 0")
		return
	}
	s.FailNext(req.Path, req.ErrCode, count)
	s.log.Info("fakewechat: errors queued", "path", req.Path, "errcode", req.ErrCode, "count", count)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) postClock(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Advance string `json:"advance"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	d, err := time.ParseDuration(req.Advance)
	if err != nil || d <= 0 {
		badRequest(w, `advance must be a positive Go duration such as "6m" or "2h1m"`)
		return
	}
	s.Advance(d)
	s.log.Info("fakewechat: clock advanced", "by", d.String())
	w.WriteHeader(http.StatusNoContent)
}

// decodeControl reads one JSON object into dst, answering 405 or 400 itself
// when it cannot.
func decodeControl(w http.ResponseWriter, r *http.Request, dst any) bool {
	if !allowMethod(w, r, http.MethodPost) {
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		badRequest(w, "body must be one JSON object with known fields: "+err.Error())
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		badRequest(w, "body must be one JSON object, nothing after it")
		return false
	}
	return true
}

func allowMethod(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed; use " + method})
	return false
}

func mintError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	if errors.Is(err, ErrFull) {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func badRequest(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
