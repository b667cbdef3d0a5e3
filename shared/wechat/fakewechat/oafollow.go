package fakewechat

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/wechat/oapush"
)

// The official account's parametric QR codes and server URL pushes, as
// WeChat does them (docs/wechat.md): cgi-bin/qrcode/create makes a
// temporary QR_STR_SCENE code, showqrcode is its image, the code encodes a
// URL that opens the "phone" page (PathOAScan), where a test user follows
// (subscribe, EventKey qrscene_ + scene) or, following already, scans
// (SCAN, the bare scene); the fake then pushes the signed event to the
// account's server URL (SetOAServer), in plaintext or safe mode, and once
// more as WeChat's retry when asked. cgi-bin/user/info reads a follower.

// API paths and pages of the official account.
const (
	PathQRCodeCreate = "/cgi-bin/qrcode/create"
	PathShowQRCode   = "/cgi-bin/showqrcode" // mp.weixin.qq.com on the real WeChat
	PathOAUserInfo   = "/cgi-bin/user/info"
	PathOAScan       = "/q/" // + the code's id: what the QR code encodes; the phone page
)

// Bounds of the official-account state.
const (
	maxOACodes      = 1 << 16
	maxQRExpire     = 2_592_000 // WeChat's limit for a temporary code, 30 days
	defaultQRExpire = 30        // WeChat's default when expire_seconds is absent
	pushTimeout     = 5 * time.Second
)

// OAServer is an official account's server configuration, as its console
// holds it: the server URL, the Token, and the EncodingAESKey (safe mode;
// empty = plaintext).
type OAServer struct {
	URL, Token, EncodingAESKey string
}

// oaCode is a parametric QR code.
type oaCode struct {
	appid, scene, ticket string
	exp                  time.Time
}

// oaFollow is the official accounts' state, under Server.mu.
type oaFollow struct {
	servers   map[string]OAServer           // appid -> server configuration
	codes     map[string]*oaCode            // the code's id (in its URL) -> code
	tickets   map[string]string             // WeChat's ticket -> the code's id
	followers map[string]map[string]*follow // appid -> openid -> follow
	client    *http.Client
	once      sync.Once
}

type follow struct {
	at    time.Time
	scene string
}

func (s *Server) oaLocked() *oaFollow {
	s.oa.once.Do(func() {
		s.oa.servers, s.oa.codes, s.oa.tickets = map[string]OAServer{}, map[string]*oaCode{}, map[string]string{}
		s.oa.followers = map[string]map[string]*follow{}
		s.oa.client = &http.Client{Timeout: pushTimeout}
	})
	return &s.oa
}

// SetOAServer sets the server configuration of the official account appid.
func (s *Server) SetOAServer(appid string, cfg OAServer) error {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: server URL %q is not an http(s) URL", ErrBadInput, cfg.URL)
	}
	if len(cfg.Token) < 3 || len(cfg.Token) > 32 {
		return fmt.Errorf("%w: the token must be 3 to 32 characters", ErrBadInput)
	}
	if cfg.EncodingAESKey != "" {
		if _, err := oapush.NewCipher(cfg.EncodingAESKey, appid); err != nil {
			return fmt.Errorf("%w: %v", ErrBadInput, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.apps[appid]; a == nil || a.Kind != api.KindOfficialAccount {
		return fmt.Errorf("%w: %s is no official account", ErrWrongKind, appid)
	}
	s.oaLocked().servers[appid] = cfg
	return nil
}

// serverTokenLocked checks the access_token of a cgi-bin call.
func (s *Server) serverTokenLocked(c *call) (*serverToken, int) {
	token := c.q.Get("access_token")
	if token == "" {
		return nil, 41001
	}
	t := s.tokens[token]
	switch {
	case t == nil || (!t.dead.IsZero() && !c.now.Before(t.dead)):
		return nil, 40001
	case !c.now.Before(t.exp):
		return nil, 42001
	}
	c.appid = t.appid
	return t, 0
}

// oaTokenLocked is serverTokenLocked for an official account's calls.
func (s *Server) oaTokenLocked(c *call) (*serverToken, int) {
	t, e := s.serverTokenLocked(c)
	if e != 0 {
		return nil, e
	}
	if s.apps[t.appid].Kind != api.KindOfficialAccount {
		return nil, 48001 // only a (verified service) official account has these APIs
	}
	return t, 0
}

type qrCreateResponse struct {
	Ticket        string `json:"ticket"`
	ExpireSeconds int    `json:"expire_seconds"`
	URL           string `json:"url"`
}

func (s *Server) qrCodeCreate(c *call) (any, int) {
	t, e := s.oaTokenLocked(c)
	if e != 0 {
		return nil, e
	}
	if len(c.body) == 0 {
		return nil, 44002
	}
	var req struct {
		ExpireSeconds *int   `json:"expire_seconds"`
		ActionName    string `json:"action_name"`
		ActionInfo    struct {
			Scene struct {
				SceneStr string `json:"scene_str"`
			} `json:"scene"`
		} `json:"action_info"`
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		return nil, 47001
	}
	scene := req.ActionInfo.Scene.SceneStr
	if req.ActionName != "QR_STR_SCENE" || scene == "" || len(scene) > 64 {
		return nil, 47001 // the fake makes temporary string scenes only
	}
	expire := defaultQRExpire
	if req.ExpireSeconds != nil {
		expire = min(max(*req.ExpireSeconds, 60), maxQRExpire)
	}
	oa := s.oaLocked()
	if len(oa.codes) >= maxOACodes {
		for id, code := range oa.codes {
			if !c.now.Before(code.exp) {
				delete(oa.codes, id)
				delete(oa.tickets, code.ticket)
			}
		}
		if len(oa.codes) >= maxOACodes {
			return nil, -1
		}
	}
	id := randomString(22, alnum)
	ticket := "gQ" + base64.StdEncoding.EncodeToString([]byte(randomString(60, alnum)))
	oa.codes[id] = &oaCode{appid: t.appid, scene: scene, ticket: ticket, exp: c.now.Add(time.Duration(expire) * time.Second)}
	oa.tickets[ticket] = id
	s.log.Debug("fakewechat: parametric QR code created", "appid", t.appid, "expire_seconds", expire)
	return qrCreateResponse{Ticket: ticket, ExpireSeconds: expire, URL: c.base + PathOAScan + id}, 0
}

// showQRCode is the image of a code: a PNG of the URL it encodes.
func (s *Server) showQRCode(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		pageMethodNotAllowed(w, "GET, HEAD")
		return
	}
	base := s.baseURL(r)
	s.mu.Lock()
	now := s.nowLocked()
	oa := s.oaLocked()
	id := oa.tickets[r.URL.Query().Get("ticket")]
	code := oa.codes[id]
	s.mu.Unlock()
	if code == nil || !now.Before(code.exp) {
		http.NotFound(w, r) // WeChat answers an error image; a 404 says the same
		return
	}
	png, err := qrcode.Encode(base+PathOAScan+id, qrcode.Medium, 256)
	if err != nil {
		http.Error(w, "fakewechat: qr image", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg") // WeChat's label; browsers sniff the PNG
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(png)
}

type oaUserInfoResponse struct {
	Subscribe      int    `json:"subscribe"`
	OpenID         string `json:"openid"`
	UnionID        string `json:"unionid,omitempty"`
	Language       string `json:"language"`
	SubscribeTime  int64  `json:"subscribe_time"`
	SubscribeScene string `json:"subscribe_scene"`
	QRScene        int    `json:"qr_scene"`
	QRSceneStr     string `json:"qr_scene_str"`
	Remark         string `json:"remark"`
	GroupID        int    `json:"groupid"`
	TagIDList      []int  `json:"tagid_list"`
}

func (s *Server) oaUserInfo(c *call) (any, int) {
	t, e := s.oaTokenLocked(c)
	if e != 0 {
		return nil, e
	}
	openid := c.q.Get("openid")
	if openid == "" {
		return nil, 41009
	}
	u := s.users[t.appid][openid]
	if u == nil {
		return nil, 40003
	}
	f := s.oaLocked().followers[t.appid][openid]
	if f == nil {
		return oaUserInfoResponse{Subscribe: 0, OpenID: openid, UnionID: u.UnionID, TagIDList: []int{}}, 0
	}
	scene := "ADD_SCENE_SEARCH"
	if f.scene != "" {
		scene = "ADD_SCENE_QR_CODE"
	}
	// Since December 2021 no nickname or avatar.
	return oaUserInfoResponse{Subscribe: 1, OpenID: openid, UnionID: u.UnionID, Language: "zh_CN",
		SubscribeTime: f.at.Unix(), SubscribeScene: scene, QRSceneStr: f.scene, TagIDList: []int{}}, 0
}

// PushResult is the server URL's answer to one push.
type PushResult struct {
	Status int
	Body   string
}

// OAScan is what ScanOAQR did: the pushes' answers (the second one is
// WeChat's retry) and the user as stored.
type OAScan struct {
	Event  string // "subscribe" or "SCAN"
	User   User
	Pushes []PushResult
}

var errNoOACode = errors.New("fakewechat: no such parametric QR code, or it expired")

// ScanOAQR does what the phone page does: user u (see MintCode for how u
// is matched) scans the code whose content (its URL, as qrcode/create
// answered) is given: a follow if u does not follow the account yet, a
// scan otherwise, pushed to the server URL, twice with retry.
func (s *Server) ScanOAQR(ctx context.Context, content string, u User, retry bool) (OAScan, error) {
	id := content
	if i := strings.LastIndex(content, PathOAScan); i >= 0 {
		id = content[i+len(PathOAScan):]
	}
	if err := validateUser(u); err != nil {
		return OAScan{}, err
	}
	return s.scanOA(ctx, id, u, retry)
}

func (s *Server) scanOA(ctx context.Context, id string, u User, retry bool) (OAScan, error) {
	s.mu.Lock()
	now := s.nowLocked()
	s.purgeLocked(now)
	oa := s.oaLocked()
	code := oa.codes[id]
	if code == nil || !now.Before(code.exp) {
		s.mu.Unlock()
		return OAScan{}, errNoOACode
	}
	srv, ok := oa.servers[code.appid]
	if !ok {
		s.mu.Unlock()
		return OAScan{}, fmt.Errorf("%w: official account %s has no server URL (SetOAServer)", ErrBadInput, code.appid)
	}
	stored, err := s.upsertUserLocked(code.appid, u)
	if err != nil {
		s.mu.Unlock()
		return OAScan{}, err
	}
	fs := oa.followers[code.appid]
	if fs == nil {
		fs = map[string]*follow{}
		oa.followers[code.appid] = fs
	}
	msg := oapush.Message{ToUserName: ghID(code.appid), FromUserName: stored.OpenID, CreateTime: now.Unix(),
		MsgType: oapush.MsgTypeEvent, Ticket: code.ticket}
	if fs[stored.OpenID] == nil {
		msg.Event, msg.EventKey = oapush.EventSubscribe, oapush.ScenePrefix+code.scene
		fs[stored.OpenID] = &follow{at: now, scene: code.scene}
	} else {
		msg.Event, msg.EventKey = oapush.EventScan, code.scene
	}
	client := oa.client
	s.mu.Unlock()

	res := OAScan{Event: msg.Event, User: *stored}
	req, err := signedPush(srv, code.appid, msg)
	if err != nil {
		return res, err
	}
	tries := 1
	if retry {
		tries = 2
	}
	for range tries {
		pr, err := req.send(ctx, client)
		if err != nil {
			return res, err
		}
		res.Pushes = append(res.Pushes, pr)
	}
	s.log.Info("fakewechat: official account push sent", "appid", code.appid, "event", msg.Event, "tries", tries)
	return res, nil
}

// ghID is an official account's original id (ToUserName): gh_ and 12 hex.
func ghID(appid string) string {
	sum := sha256.Sum256([]byte(appid))
	return "gh_" + hex.EncodeToString(sum[:6])
}

// push is a signed push, ready to send (again: a retry is the same).
type push struct {
	url  string
	body []byte
}

// signedPush signs msg as WeChat does, sealing it in safe mode. The
// signature's timestamp is the wall clock, not the fake clock CreateTime
// follows: receivers refuse signatures that are not current, and a test
// that moved the fake clock on still gets its pushes through.
func signedPush(srv OAServer, appid string, msg oapush.Message) (push, error) {
	timestamp := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := randomString(10, "0123456789")
	q := url.Values{"signature": {oapush.Signature(srv.Token, timestamp, nonce)}, "timestamp": {timestamp},
		"nonce": {nonce}, "openid": {msg.FromUserName}}
	body := msg.Marshal()
	if srv.EncodingAESKey != "" {
		c, err := oapush.NewCipher(srv.EncodingAESKey, appid)
		if err != nil {
			return push{}, err
		}
		var random [16]byte
		_, _ = rand.Read(random[:])
		var enc string
		body, enc = c.SealPush(msg.ToUserName, random, body)
		q.Set("encrypt_type", "aes")
		q.Set("msg_signature", oapush.Signature(srv.Token, timestamp, nonce, enc))
	}
	u, err := url.Parse(srv.URL)
	if err != nil {
		return push{}, err
	}
	all := u.Query()
	for k, v := range q {
		all[k] = v
	}
	u.RawQuery = all.Encode()
	return push{url: u.String(), body: body}, nil
}

func (p push) send(ctx context.Context, client *http.Client) (PushResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(p.body))
	if err != nil {
		return PushResult{}, err
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "Mozilla/4.0") // what WeChat's pushes say
	resp, err := client.Do(req)
	if err != nil {
		return PushResult{}, fmt.Errorf("fakewechat: push to the server URL: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	return PushResult{Status: resp.StatusCode, Body: string(b)}, nil
}

// oaScanPage is the phone: GET shows the code's account and a form for
// the test user; POST follows or scans and shows the server's answers.
func (s *Server) oaScanPage(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, PathOAScan)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.mu.Lock()
		now := s.nowLocked()
		oa := s.oaLocked()
		code := oa.codes[id]
		var page oaScanPageData
		if code != nil && now.Before(code.exp) {
			page = oaScanPageData{ID: id, AppID: code.appid, GhID: ghID(code.appid)}
			for _, openid := range s.apps[code.appid].recent {
				if u := s.users[code.appid][openid]; u != nil {
					page.Known = append(page.Known, knownUser{Label: cmpOr(u.Nickname, u.OpenID), OpenID: u.OpenID,
						Href: url.PathEscape(id) + "?" + url.Values{"openid": {u.OpenID}}.Encode()})
				}
			}
			if u := s.users[code.appid][r.URL.Query().Get("openid")]; u != nil {
				page.Form = formValues{Nickname: u.Nickname, OpenID: u.OpenID, UnionID: u.UnionID}
				page.Following = oa.followers[code.appid][u.OpenID] != nil
			}
		}
		s.mu.Unlock()
		if page.ID == "" {
			renderExpired(w)
			return
		}
		render(w, http.StatusOK, oaScanTemplate, page)
	case http.MethodPost:
		f, ok := phoneForm(w, r, "retry")
		if !ok {
			return
		}
		u := formUser(f)
		if err := validateForm(u); err != nil {
			renderBadRequest(w, strings.TrimPrefix(err.Error(), ErrBadInput.Error()+": "))
			return
		}
		res, err := s.scanOA(r.Context(), id, u, f.Get("retry") != "")
		switch {
		case errors.Is(err, errNoOACode):
			renderExpired(w)
			return
		case err != nil:
			renderMessage(w, http.StatusBadGateway, messagePage{ID: "error", TitleZh: "推送失败", TitleEn: "The push failed",
				Detail: err.Error()})
			return
		}
		detail := make([]string, len(res.Pushes))
		ok = true
		for i, p := range res.Pushes {
			detail[i] = fmt.Sprintf("%d %s", p.Status, p.Body)
			ok = ok && p.Status == http.StatusOK
		}
		title, titleEn := "已关注", "Followed"
		if res.Event == oapush.EventScan {
			title, titleEn = "已扫码", "Scanned"
		}
		page := messagePage{ID: "done", Icon: "✓", TitleZh: title, TitleEn: titleEn,
			Detail: res.Event + " → " + strings.Join(detail, " · ")}
		if !ok {
			page.ID, page.Icon = "error", "!"
		}
		renderMessage(w, http.StatusOK, page)
	default:
		pageMethodNotAllowed(w, "GET, HEAD, POST")
	}
}

type oaScanPageData struct {
	ID, AppID, GhID string
	Known           []knownUser
	Form            formValues
	Following       bool
}

var oaScanTemplate = template.Must(template.New("oascan").Parse(pageHead + `<title>关注公众号 / Follow the official account</title>
` + pageStyle + `
</head>
<body>
<main>
<h1>关注公众号<br><small>Follow the official account</small></h1>
<p class="muted">AppID <code id="appid">{{.AppID}}</code> · <code>{{.GhID}}</code></p>
` + knownUsersHTML + `<form method="post">
` + userFieldsHTML + `<label><input id="retry" name="retry" type="checkbox" value="1" style="width:auto"> 再推送一次（微信的重试）/ push again (WeChat's retry)</label>
<div class="buttons">
<button id="allow" type="submit">{{if .Following}}扫码 / Scan{{else}}关注 / Follow{{end}}</button>
</div>
</form>
<p class="muted">模拟微信，仅供测试 / fake WeChat, for tests only</p>
</main>
</body>
</html>
`))
