package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The stand-in's official accounts: one in plaintext mode (the default,
// standInOAAppID from WXLOGIN_OA_*), one in safe mode (from the apps file).
const (
	standInSafeAppID  = "wxstandin000000005"
	standInSafeSecret = "standin-safe-secret"
	standInSafeToken  = "standinsafetoken"
	standInSafeAESKey = "S7dbUk0rN1mPqv2TzXh4cYwJf8aLe3Go6iRuVsBnQtK"
)

// standInOA is the stand-in's state of the official accounts: the codes
// made (by WeChat's ticket) and the followers (openid -> unionid).
type standInOA struct {
	codes     []standInQRCode
	followers map[string]string
}

type standInQRCode struct {
	Expire int
	Action string
	Scene  string
	Ticket string
}

// serveOA answers the official account's cgi-bin calls; false for any
// other path. s.mu is held.
func (s *standIn) serveOA(w http.ResponseWriter, r *http.Request, fail func(int, string), out func(any)) bool {
	q := r.URL.Query()
	switch r.URL.Path {
	case "/cgi-bin/qrcode/create":
		if q.Get("access_token") != standInServerToken {
			fail(40001, "invalid credential")
			return true
		}
		var body struct {
			ExpireSeconds int    `json:"expire_seconds"`
			ActionName    string `json:"action_name"`
			ActionInfo    struct {
				Scene struct {
					SceneStr string `json:"scene_str"`
				} `json:"scene"`
			} `json:"action_info"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
			fail(47001, "data format error")
			return true
		}
		ticket := fmt.Sprintf("gQStandIn%d==", len(s.oa.codes)+1)
		s.oa.codes = append(s.oa.codes, standInQRCode{Expire: body.ExpireSeconds, Action: body.ActionName,
			Scene: body.ActionInfo.Scene.SceneStr, Ticket: ticket})
		out(map[string]any{"ticket": ticket, "expire_seconds": body.ExpireSeconds, "url": "http://weixin.qq.com/q/standin" + strconv.Itoa(len(s.oa.codes))})
	case "/cgi-bin/user/info":
		unionid, ok := s.oa.followers[q.Get("openid")]
		if q.Get("access_token") != standInServerToken || !ok {
			fail(40003, "invalid openid")
			return true
		}
		out(map[string]any{"subscribe": 1, "openid": q.Get("openid"), "unionid": unionid, "language": "zh_CN", "subscribe_time": time.Now().Unix()})
	default:
		return false
	}
	return true
}

func (s *standIn) follow(openid, unionid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oa.followers == nil {
		s.oa.followers = map[string]string{}
	}
	s.oa.followers[openid] = unionid
}

func (s *standIn) callCount(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

func (s *standIn) lastQRCode(t *testing.T) standInQRCode {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.oa.codes) == 0 {
		t.Fatal("no QR code was created at WeChat")
	}
	return s.oa.codes[len(s.oa.codes)-1]
}

// wxSign is WeChat's signature: sha1 of the sorted strings, hex.
func wxSign(parts ...string) string {
	sorted := append([]string(nil), parts...)
	sort.Strings(sorted)
	h := sha1.New()
	for _, p := range sorted {
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// wxSeal is safe mode's envelope, written from WeChat's description.
func wxSeal(t *testing.T, aesKey, appid string, msg []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(aesKey + "=")
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	plain.WriteString("0123456789abcdef")
	_ = binary.Write(&plain, binary.BigEndian, uint32(len(msg)))
	plain.Write(msg)
	plain.WriteString(appid)
	n := 32 - plain.Len()%32
	plain.Write(bytes.Repeat([]byte{byte(n)}, n))
	block, _ := aes.NewCipher(key)
	out := make([]byte, plain.Len())
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(out, plain.Bytes())
	return base64.StdEncoding.EncodeToString(out)
}

// wxOpen opens safe mode's envelope, as WeChat does with our replies.
func wxOpen(t *testing.T, aesKey, appid, encrypted string) string {
	t.Helper()
	key, _ := base64.StdEncoding.DecodeString(aesKey + "=")
	raw, err := base64.StdEncoding.DecodeString(encrypted)
	if err != nil || len(raw)%16 != 0 || len(raw) == 0 {
		t.Fatalf("reply Encrypt %q is not base64 of AES blocks", encrypted)
	}
	block, _ := aes.NewCipher(key)
	cipher.NewCBCDecrypter(block, key[:16]).CryptBlocks(raw, raw)
	raw = raw[:len(raw)-int(raw[len(raw)-1])]
	n := binary.BigEndian.Uint32(raw[16:20])
	if got := string(raw[20+n:]); got != appid {
		t.Fatalf("reply sealed for appid %q, want %q", got, appid)
	}
	return string(raw[20 : 20+n])
}

// xmlField is the text of <name> in doc (CDATA or not).
func xmlField(doc, name string) string {
	_, rest, ok := strings.Cut(doc, "<"+name+">")
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, "</"+name+">")
	v = strings.TrimPrefix(v, "<![CDATA[")
	return strings.TrimSuffix(v, "]]>")
}

// wantReply checks the answer to a login push: the reply text message to
// the follower, sealed and signed in safe mode.
func (a oaAccount) wantReply(t *testing.T, body, openid string) {
	t.Helper()
	msg := body
	if a.aesKey != "" {
		enc := xmlField(body, "Encrypt")
		if sig := xmlField(body, "MsgSignature"); sig != wxSign(a.token, xmlField(body, "TimeStamp"), xmlField(body, "Nonce"), enc) {
			t.Fatalf("safe-mode reply signature %q does not verify: %s", sig, body)
		}
		msg = wxOpen(t, a.aesKey, a.appid, enc)
	}
	if xmlField(msg, "MsgType") != "text" || xmlField(msg, "Content") != oaReply || xmlField(msg, "ToUserName") != openid ||
		xmlField(msg, "FromUserName") != "gh_standin" {
		t.Fatalf("reply %q, want the text message to %s", msg, openid)
	}
}

// oaAccount is an official account as the tests push to it.
type oaAccount struct {
	app, appid, token, aesKey string
}

// wxPush is one push as WeChat sends it.
type wxPush struct {
	query url.Values
	body  string
}

// newPush builds the push of an event from openid at createTime, signed
// (and in safe mode sealed) as WeChat does.
func (a oaAccount) newPush(t *testing.T, openid string, createTime int64, event, eventKey string) wxPush {
	t.Helper()
	xml := fmt.Sprintf(`<xml><ToUserName><![CDATA[gh_standin]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName><CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[%s]]></Event><EventKey><![CDATA[%s]]></EventKey><Ticket><![CDATA[gQStandIn]]></Ticket></xml>`,
		openid, createTime, event, eventKey)
	ts, nonce := strconv.FormatInt(createTime, 10), "n"+strconv.FormatInt(createTime%100000, 10)
	q := url.Values{"signature": {wxSign(a.token, ts, nonce)}, "timestamp": {ts}, "nonce": {nonce}, "openid": {openid}}
	if a.aesKey == "" {
		return wxPush{query: q, body: xml}
	}
	enc := wxSeal(t, a.aesKey, a.appid, []byte(xml))
	q.Set("encrypt_type", "aes")
	q.Set("msg_signature", wxSign(a.token, ts, nonce, enc))
	return wxPush{query: q, body: `<xml><ToUserName><![CDATA[gh_standin]]></ToUserName><Encrypt><![CDATA[` + enc + `]]></Encrypt></xml>`}
}

func (a oaAccount) events(p *procStack) string {
	return p.url("/api/v1/wechat/oa/" + a.appid + "/events")
}

func (a oaAccount) send(t *testing.T, p *procStack, push wxPush) response {
	t.Helper()
	return do(t, http.MethodPost, a.events(p)+"?"+push.query.Encode(), "text/xml", push.body, nil)
}

// oaReply is the message a follow-to-log-in answers the follower with.
const oaReply = "登录成功，请回到网页 · Logged in"

// startOAProcs is startProcs with the two official accounts.
func startOAProcs(t *testing.T) (*procStack, oaAccount, oaAccount) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "apps.json")
	apps := fmt.Sprintf(`[{"name":"oasafe","kind":"officialaccount","appid":%q,"secret":%q,"token":%q,"encoding_aes_key":%q}]`,
		standInSafeAppID, standInSafeSecret, standInSafeToken, standInSafeAESKey)
	if err := os.WriteFile(file, []byte(apps), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcs(t, "WXLOGIN_QR_TTL=60s", "WXLOGIN_APPS_FILE="+file, "WXLOGIN_OA_LOGIN_REPLY="+oaReply)
	return p, oaAccount{appid: standInOAAppID, token: standInOAToken},
		oaAccount{app: "oasafe", appid: standInSafeAppID, token: standInSafeToken, aesKey: standInSafeAESKey}
}

// TestOAServerURLProcesses: the server URL's verification echoes echostr
// only with a valid signature.
func TestOAServerURLProcesses(t *testing.T) {
	p, plain, safe := startOAProcs(t)
	for _, a := range []oaAccount{plain, safe} {
		ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "8742"
		q := url.Values{"signature": {wxSign(a.token, ts, nonce)}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {"5837397520342218401"}}
		r := do(t, http.MethodGet, a.events(p)+"?"+q.Encode(), "", "", nil)
		if r.status != http.StatusOK || r.raw != "5837397520342218401" {
			t.Fatalf("%s verification: %d %q", a.appid, r.status, r.raw)
		}
		for name, bad := range map[string]url.Values{
			"wrong signature": {"signature": {wxSign("othertoken", ts, nonce)}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {"e1"}},
			"no signature":    {"timestamp": {ts}, "nonce": {nonce}, "echostr": {"e1"}},
			"other nonce":     {"signature": {wxSign(a.token, ts, nonce)}, "timestamp": {ts}, "nonce": {"1"}, "echostr": {"e1"}},
		} {
			r := do(t, http.MethodGet, a.events(p)+"?"+bad.Encode(), "", "", nil)
			if r.status != http.StatusUnauthorized || str(r, "code") != "signature_invalid" || strings.Contains(r.raw, `"e1"`) && !strings.HasPrefix(r.raw, "{") {
				t.Errorf("%s %s: %d %s", a.appid, name, r.status, r.raw)
			}
		}
	}
	if r := do(t, http.MethodGet, p.url("/api/v1/wechat/oa/wxnotours/events?signature=x&timestamp=1&nonce=1&echostr=e"), "", "", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown account: %d %s", r.status, r.raw)
	}
}

// followTicket creates a follow-to-log-in ticket of a and returns it with
// its poll token and the scene WeChat was given.
func followTicket(t *testing.T, p *procStack, a oaAccount) (ticket, pollToken, scene string) {
	t.Helper()
	body := `{}`
	if a.app != "" {
		body = `{"app":"` + a.app + `"}`
	}
	r := doWith(t, newWebBrowser(), http.MethodPost, p.url("/api/v1/auth/oa/qr"), "application/json", body, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("create follow ticket: %d %s", r.status, r.raw)
	}
	code := p.wx.lastQRCode(t)
	exp, _ := r.body["expires_in"].(float64)
	if code.Action != "QR_STR_SCENE" || code.Expire != int(exp) || code.Scene == "" || len(code.Scene) > 64 {
		t.Fatalf("qrcode/create got %+v (expires_in %v)", code, exp)
	}
	ticket, pollToken = str(r, "ticket"), str(r, "poll_token")
	if code.Scene == ticket || strings.Contains(code.Scene, pollToken) {
		t.Fatalf("scene %q is the ticket or holds the poll token", code.Scene)
	}
	if want := "/cgi-bin/showqrcode?ticket=" + url.QueryEscape(code.Ticket); !strings.HasSuffix(str(r, "qr_url"), want) {
		t.Errorf("qr_url %q, want …%s", str(r, "qr_url"), want)
	}
	if !strings.HasPrefix(str(r, "qr_content"), "http://weixin.qq.com/q/") {
		t.Errorf("qr_content %q", str(r, "qr_content"))
	}
	if ck := r.header.Get("Set-Cookie"); !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "Path=/api/v1/auth/oa/qr") {
		t.Errorf("poll cookie %q", ck)
	}
	return ticket, pollToken, code.Scene
}

func oaPoll(t *testing.T, p *procStack, ticket, pollToken string) response {
	t.Helper()
	return do(t, http.MethodGet, p.url("/api/v1/auth/oa/qr/"+ticket), "", "", map[string]string{"X-Poll-Token": pollToken})
}

// TestOAFollowLoginProcesses: follow-to-log-in QR codes end to end, in
// plaintext and safe mode, against the stand-in.
func TestOAFollowLoginProcesses(t *testing.T) {
	p, plain, safe := startOAProcs(t)

	// The person logged in with the mini-program first: unionid joins them.
	p.wx.mint("oa-mini-code", standInUser{OpenID: "o_mini_oa", UnionID: "u_oa_person"})
	mini := postJSON(t, p.url("/api/v1/auth/miniprogram/login"), map[string]any{"code": "oa-mini-code"})
	if mini.status != http.StatusOK {
		t.Fatalf("mini-program login: %d %s", mini.status, mini.raw)
	}
	person := userID(t, mini)

	createTime := time.Now().Unix()
	for _, a := range []oaAccount{plain, safe} {
		openid := "o_follow_" + a.appid
		p.wx.follow(openid, "u_oa_person")
		t.Run(a.appid, func(t *testing.T) {
			ticket, pollToken, scene := followTicket(t, p, a)
			createTime++

			// A bad signature changes nothing.
			forged := a.newPush(t, openid, createTime, "subscribe", "qrscene_"+scene)
			forged.query.Set("signature", wxSign("not-the-token", forged.query.Get("timestamp"), forged.query.Get("nonce")))
			forged.query.Set("msg_signature", wxSign("not-the-token", "x"))
			if r := a.send(t, p, forged); r.status != http.StatusUnauthorized || str(r, "code") != "signature_invalid" {
				t.Fatalf("forged push: %d %s", r.status, r.raw)
			}
			if a.aesKey != "" {
				// Safe mode: a plaintext push, even correctly signed, is refused
				// (plaintext signatures do not cover the body).
				pt := oaAccount{appid: a.appid, token: a.token}.newPush(t, openid, createTime, "subscribe", "qrscene_"+scene)
				if r := a.send(t, p, pt); r.status != http.StatusUnauthorized {
					t.Fatalf("plaintext push to a safe-mode account: %d %s", r.status, r.raw)
				}
			}
			if r := oaPoll(t, p, ticket, pollToken); r.status != http.StatusOK || str(r, "status") != "pending" {
				t.Fatalf("after the forged push: %d %s", r.status, r.raw)
			}

			// subscribe (qrscene_…) answers the waiting long-poll at once.
			waiting := longPollAt(t, p, "/api/v1/auth/oa/qr/", ticket, pollToken)
			push := a.newPush(t, openid, createTime, "subscribe", "qrscene_"+scene)
			r := a.send(t, p, push)
			done := time.Now()
			if r.status != http.StatusOK {
				t.Fatalf("subscribe push: %d %q", r.status, r.raw)
			}
			a.wantReply(t, r.raw, openid)
			res := <-waiting
			if res.err != nil || res.r.status != http.StatusOK || str(res.r, "status") != "confirmed" || str(res.r, "access_token") == "" {
				t.Fatalf("long-poll: %v %d %s", res.err, res.r.status, res.r.raw)
			}
			if lag := res.at.Sub(done); lag > time.Second {
				t.Errorf("long-poll answered %s after the push, want < 1s", lag)
			}
			if got := userID(t, res.r); got != person {
				t.Errorf("follow-QR login is user %s, the mini-program login %s: not one user", got, person)
			}
			// WeChat's retry of the same push hands out nothing more, and
			// is not handled again (no second user/info, no second event).
			infos := p.wx.callCount("/cgi-bin/user/info")
			// (The tokens are out: the retry completes nothing, and tells the
			// follower nothing either.)
			if r := a.send(t, p, push); r.status != http.StatusOK || r.raw != "success" {
				t.Fatalf("retried push: %d %q", r.status, r.raw)
			}
			if n := p.wx.callCount("/cgi-bin/user/info"); n != infos {
				t.Errorf("the retry called user/info again (%d calls, was %d)", n, infos)
			}
			if r := oaPoll(t, p, ticket, pollToken); r.status != http.StatusNotFound || r.body["access_token"] != nil {
				t.Fatalf("poll after the retry: %d %s", r.status, r.raw)
			}

			// A follower scans a second code: SCAN with the bare scene.
			ticket2, pollToken2, scene2 := followTicket(t, p, a)
			createTime++
			// Correctly signed but not current (ten minutes old, or two
			// minutes ahead): refused, the ticket stays pending.
			for _, at := range []int64{time.Now().Add(-10 * time.Minute).Unix(), time.Now().Add(2 * time.Minute).Unix()} {
				old := a.newPush(t, openid, at, "SCAN", scene2)
				if r := a.send(t, p, old); r.status != http.StatusUnauthorized || str(r, "code") != "signature_invalid" {
					t.Fatalf("push signed at %d: %d %s", at, r.status, r.raw)
				}
			}
			if a.aesKey == "" {
				// Plaintext signatures cover no body: the first push's
				// signature with another message (this SCAN, as someone who
				// saw that push's URL would send it) is refused.
				replay := a.newPush(t, openid, createTime, "SCAN", scene2)
				for _, k := range []string{"signature", "timestamp", "nonce"} {
					replay.query.Set(k, push.query.Get(k))
				}
				if r := a.send(t, p, replay); r.status != http.StatusUnauthorized || str(r, "code") != "signature_invalid" {
					t.Fatalf("the first push's signature on another message: %d %s", r.status, r.raw)
				}
				// Nor on another body of the same sender and CreateTime (a
				// failed push is forgotten, so this could be handled anew).
				same := a.newPush(t, openid, createTime-1, "SCAN", scene2)
				same.query = push.query
				if r := a.send(t, p, same); r.status != http.StatusUnauthorized || str(r, "code") != "signature_invalid" {
					t.Fatalf("the first push's signature and sender on another scene: %d %s", r.status, r.raw)
				}
			}
			if r := oaPoll(t, p, ticket2, pollToken2); r.status != http.StatusOK || str(r, "status") != "pending" {
				t.Fatalf("after the stale and replayed pushes: %d %s", r.status, r.raw)
			}
			waiting = longPollAt(t, p, "/api/v1/auth/oa/qr/", ticket2, pollToken2)
			if r := a.send(t, p, a.newPush(t, openid, createTime, "SCAN", scene2)); r.status != http.StatusOK {
				t.Fatalf("SCAN push: %d %s", r.status, r.raw)
			}
			res = <-waiting
			if res.err != nil || str(res.r, "status") != "confirmed" || userID(t, res.r) != person {
				t.Fatalf("SCAN long-poll: %v %d %s", res.err, res.r.status, res.r.raw)
			}
			me := do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(str(res.r, "access_token")))
			if !strings.Contains(me.raw, `"kind":"officialaccount"`) || !strings.Contains(me.raw, a.appid) {
				t.Errorf("/me lacks the official-account identity: %s", me.raw)
			}

			// Pushes that are not ours are acknowledged and change nothing.
			createTime++
			ticket3, pollToken3, _ := followTicket(t, p, a)
			for i, ev := range [][2]string{{"subscribe", ""}, {"subscribe", "qrscene_marketing-42"}, {"SCAN", "marketing-42"},
				{"SCAN", "wxl." + ticket3 + ".guessed"}, {"unsubscribe", ""}, {"CLICK", "menu"}} {
				if r := a.send(t, p, a.newPush(t, openid, createTime+int64(i), ev[0], ev[1])); r.status != http.StatusOK || r.raw != "success" {
					t.Errorf("push %v: %d %s", ev, r.status, r.raw)
				}
			}
			createTime += 10
			if r := oaPoll(t, p, ticket3, pollToken3); str(r, "status") != "pending" {
				t.Errorf("a push with a guessed scene completed the ticket: %d %s", r.status, r.raw)
			}
		})
	}

	t.Run("one unionid is one user: mini-program, app, in-WeChat and follow QR", func(t *testing.T) {
		p.wx.mint("app-code-oa-person", standInUser{OpenID: "o_app_oa_person", UnionID: "u_oa_person", AppID: standInAppAppID})
		app := postJSON(t, p.url("/api/v1/auth/app/login"), map[string]any{"code": "app-code-oa-person"})
		// The in-WeChat login of the plaintext account: the openid that followed.
		back := oaLogin(t, p, "oa-web-code-person", standInUser{OpenID: "o_follow_" + standInOAAppID, UnionID: "u_oa_person", Nickname: "Olive"},
			url.Values{"redirect_uri": {standInSite + "done"}})
		web := exchange(t, p, back.Query().Get("wxlogin_code"))
		if app.status != http.StatusOK || web.status != http.StatusOK {
			t.Fatalf("app %d %s; in-WeChat %d %s", app.status, app.raw, web.status, web.raw)
		}
		if userID(t, app) != person || userID(t, web) != person {
			t.Fatalf("users: mini-program %s, app %s, in-WeChat %s: want one", person, userID(t, app), userID(t, web))
		}
		me := do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(str(web, "access_token")))
		for _, want := range []string{`"kind":"miniprogram"`, `"kind":"app"`, standInOAAppID, standInSafeAppID} {
			if !strings.Contains(me.raw, want) {
				t.Errorf("/me lacks %s: %s", want, me.raw)
			}
		}
	})

	t.Run("events: each push once, for the adopter's bot", func(t *testing.T) {
		until(t, 10*time.Second, "the outbox to drain", outboxDrained(p.openDB()))
		_, js := p.jetStream()
		// Per account: subscribed = the login, a plain follow, another
		// code's follow; scanned = the login, another code's, a guessed
		// scene; one unsubscribe; one menu click.
		for subject, want := range map[string]int{"wxlogin.events.oa.subscribed": 6, "wxlogin.events.oa.scanned": 6,
			"wxlogin.events.oa.unsubscribed": 2, "wxlogin.events.oa.message": 2} {
			msgs := streamEvents(t, js, subject)
			logins := 0
			for _, m := range msgs {
				var ev struct {
					ID string `json:"id"`
					OA struct {
						AppID, OpenID string
						Login         bool   `json:"login"`
						EventKey      string `json:"event_key"`
					} `json:"oa"`
				}
				if err := json.Unmarshal(m.Data, &ev); err != nil || ev.ID == "" || ev.ID != m.Header.Get("Nats-Msg-Id") || ev.OA.OpenID == "" {
					t.Errorf("%s event %s: %v", subject, m.Data, err)
				}
				// Our scenes keep their ticket but never their secret.
				if rest, ours := strings.CutPrefix(strings.TrimPrefix(ev.OA.EventKey, "qrscene_"), "wxl."); ours && strings.Contains(rest, ".") {
					t.Errorf("%s event carries a scene's secret: event_key %q", subject, ev.OA.EventKey)
				}
				if ev.OA.Login {
					logins++
				}
			}
			if len(msgs) != want {
				t.Errorf("%s: %d events, want %d", subject, len(msgs), want)
			}
			// login: the push named a follow-to-log-in code (the guessed
			// scene has the shape: its ticket just does not take it).
			if want := map[string]int{"wxlogin.events.oa.subscribed": 2, "wxlogin.events.oa.scanned": 4}[subject]; logins != want {
				t.Errorf("%s: %d login events, want %d", subject, logins, want)
			}
		}
	})

	t.Run("oversize and hostile bodies", func(t *testing.T) {
		ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "77"
		q := url.Values{"signature": {wxSign(plain.token, ts, nonce)}, "timestamp": {ts}, "nonce": {nonce}}
		for name, body := range map[string]string{
			"doctype":   `<!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><FromUserName>&a;</FromUserName></xml>`,
			"not xml":   `{"json":true}`,
			"too big":   "<xml><Content>" + strings.Repeat("a", 70<<10) + "</Content></xml>",
			"no sender": `<xml><CreateTime>1</CreateTime><MsgType>event</MsgType></xml>`,
		} {
			r := do(t, http.MethodPost, plain.events(p)+"?"+q.Encode(), "text/xml", body, nil)
			if r.status != http.StatusBadRequest || str(r, "code") != "invalid_request" {
				t.Errorf("%s: %d %s", name, r.status, r.raw)
			}
		}
	})
}

// TestOAFollowNotBoundProcesses: with auto-register off, a follower without
// an account gets no tokens: the poll answers wechat_not_bound with a bind
// token, which registers an account holding the official account's
// identity.
func TestOAFollowNotBoundProcesses(t *testing.T) {
	p := startProcs(t, "WXLOGIN_AUTO_REGISTER=false")
	a := oaAccount{appid: standInOAAppID, token: standInOAToken}
	p.wx.follow("o_follow_newcomer", "u_follow_newcomer")
	ticket, pollToken, scene := followTicket(t, p, a)
	waiting := longPollAt(t, p, "/api/v1/auth/oa/qr/", ticket, pollToken)
	if r := a.send(t, p, a.newPush(t, "o_follow_newcomer", time.Now().Unix(), "subscribe", "qrscene_"+scene)); r.status != http.StatusOK || r.raw != "success" {
		t.Fatalf("push: %d %s", r.status, r.raw)
	}
	res := <-waiting
	bind := str(res.r, "bind_token")
	if res.err != nil || res.r.status != http.StatusForbidden || str(res.r, "code") != "wechat_not_bound" || bind == "" || res.r.body["access_token"] != nil {
		t.Fatalf("poll: %v %d %s", res.err, res.r.status, res.r.raw)
	}
	reg := postJSON(t, p.url("/api/v1/auth/register"), map[string]any{"username": "follower_nina", "password": "Follower-Secret-42", "bind_token": bind})
	if reg.status != http.StatusCreated {
		t.Fatalf("register with the bind token: %d %s", reg.status, reg.raw)
	}
	me := do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(str(reg, "access_token")))
	if !strings.Contains(me.raw, `"kind":"officialaccount"`) || !strings.Contains(me.raw, standInOAAppID) {
		t.Fatalf("/me after registering: %s", me.raw)
	}
}
