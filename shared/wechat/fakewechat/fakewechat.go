// Package fakewechat is a stand-in for the WeChat server APIs
// (api.weixin.qq.com) that behaves like the real thing as described in
// docs/wechat.md: single-use codes that expire, the real errcodes, JSON
// served as text/plain with HTTP 200, "rid:" suffixes in errmsg. Tests,
// devstack and the fakewechat binary use it.
//
// Codes are minted by the test or the developer (MintCode, MintPhoneCode, or
// POST /fake/codes over HTTP) instead of by a phone. Time is the Options.Now
// clock moved forward by Advance, so expiry can be tested without waiting.
//
// The website QR login has its user-facing pages too (qrlogin.go): the
// open.weixin.qq.com QR page (/connect/qrconnect) and the page a phone opens
// on scanning it (/connect/confirm), where a person picks a test user and
// allows or denies; the QR page long-polls (/connect/l/qrconnect) and then
// navigates to the website's callback, as WeChat's does. ScanAndConfirm does
// the same for tests without a browser.
//
// Token lifetimes, as implemented:
//   - QR scan sessions (one per QR page shown) live 5 minutes and are
//     confirmed or denied once.
//   - wx.login codes (jscode2session) live 5 minutes, Open Platform codes
//     (sns/oauth2/access_token) 10 minutes, getPhoneNumber codes 5 minutes;
//     all work once.
//   - sns/oauth2 access tokens live 7200s; an expired one answers 42001 for an
//     hour after expiry, then 40001 like any unknown token.
//   - cgi-bin/stable_token returns the same token while it has more than 5
//     minutes left, a new one (the old still valid until it expires) in its
//     last 5 minutes, and a new one on force_refresh, which invalidates the
//     old one at once (40001).
//   - cgi-bin/token returns a new token on every call; the previous one stays
//     valid for 5 more minutes, as on the real WeChat, then answers 40001.
//     The two families are independent, as on the real WeChat.
//
// Memory is bounded: expired records are purged as time passes (in expiry
// order, so a purge costs only what it removes), and at most maxLiveCodes
// codes, maxUsers users and maxScans QR scan sessions are kept; past that,
// minting fails with ErrFull (and the QR page says the system is busy).
package fakewechat

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
)

// App is a WeChat app the fake knows. Kind is "miniprogram", "web",
// "officialaccount" or "app" (mobile). Domain is an official account's
// web-authorization domain (网页授权域名): its /connect/oauth2/authorize
// refuses a redirect_uri on any other host ("host" or "host:port"); empty
// accepts any, for development.
type App struct {
	AppID, Secret, Kind string
	Domain              string
}

// The devstack apps (see the project brief); the fake knows them by default.
const (
	DevMiniProgramAppID  = "wx1111111111111111"
	DevMiniProgramSecret = "devstack-miniprogram-secret"
	DevWebAppID          = "wx2222222222222222"
	DevWebSecret         = "devstack-web-secret"
	DevOAAppID           = "wx5555555555555555"
	DevOASecret          = "devstack-oa-secret"
	DevOAToken           = "devstackoatoken" // the official account's message token
	DevAppAppID          = "wx6666666666666666"
	DevAppSecret         = "devstack-app-secret"
)

// DefaultApps returns the devstack apps.
func DefaultApps() []App {
	return []App{
		{AppID: DevMiniProgramAppID, Secret: DevMiniProgramSecret, Kind: api.KindMiniProgram},
		{AppID: DevWebAppID, Secret: DevWebSecret, Kind: api.KindWeb},
		{AppID: DevOAAppID, Secret: DevOASecret, Kind: api.KindOfficialAccount},
		{AppID: DevAppAppID, Secret: DevAppSecret, Kind: api.KindApp},
	}
}

// Validate reports whether a is usable by the fake.
func (a App) Validate() error {
	switch {
	case a.AppID == "":
		return errors.New("app without appid")
	case strings.ContainsAny(a.AppID, " \t\r\n:,"):
		return fmt.Errorf("appid %q contains a space, ':' or ','", a.AppID)
	case a.Secret == "":
		return fmt.Errorf("app %s: empty secret", a.AppID)
	case a.Domain != "" && a.Kind != api.KindOfficialAccount:
		return fmt.Errorf("app %s: only an official account has a web-authorization domain", a.AppID)
	case strings.ContainsAny(a.Domain, "/ \t\r\n,"):
		return fmt.Errorf("app %s: domain %q is a host, not a URL", a.AppID, a.Domain)
	case !slices.Contains([]string{api.KindMiniProgram, api.KindWeb, api.KindOfficialAccount, api.KindApp}, a.Kind):
		return fmt.Errorf("app %s: kind %q is not %q, %q, %q or %q", a.AppID, a.Kind, api.KindMiniProgram, api.KindWeb, api.KindOfficialAccount, api.KindApp)
	}
	return nil
}

// ParseApps parses "appid:secret:kind,appid:secret:kind" (the
// FAKEWECHAT_APPS format). Spaces around entries are ignored.
func ParseApps(s string) ([]App, error) {
	var apps []App
	seen := map[string]bool{}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("entry %d: want appid:secret:kind", len(apps)+1)
		}
		a := App{AppID: strings.TrimSpace(parts[0]), Secret: strings.TrimSpace(parts[1]), Kind: strings.TrimSpace(parts[2])}
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("entry %d: %w", len(apps)+1, err)
		}
		if seen[a.AppID] {
			return nil, fmt.Errorf("entry %d: appid %s listed twice", len(apps)+1, a.AppID)
		}
		seen[a.AppID] = true
		apps = append(apps, a)
	}
	if len(apps) == 0 {
		return nil, errors.New("no apps")
	}
	return apps, nil
}

// Options configure a Server.
type Options struct {
	Apps   []App            // default: DefaultApps()
	Now    func() time.Time // default time.Now; Advance moves the fake clock on from it
	Logger *slog.Logger     // optional; the fake never logs codes, tokens or secrets
	// PublicURL is the fake's own address as a phone reaches it (e.g.
	// "http://192.168.1.20:9090"), used in the URL the QR code encodes.
	// Empty: derived from each request's Host (and TLS or X-Forwarded-Proto).
	PublicURL string
	// LoadCodes turns on the load mode for benchmarks (off by default): a
	// code "load:<openid>" or "load:<openid>:<unionid>" logs that user in,
	// for any app, any number of times, without being minted. Everything
	// else behaves as without it.
	LoadCodes bool
}

// User is a WeChat user as one app sees it: OpenID is per app, UnionID is
// shared by the apps of one Open Platform account. Sex is 0 unknown, 1 male,
// 2 female.
type User struct {
	OpenID, UnionID, Nickname, HeadImgURL string
	Sex                                   int
	Province, City, Country               string
}

// Errors of the minting methods.
var (
	ErrUnknownApp = errors.New("fakewechat: unknown appid")
	ErrWrongKind  = errors.New("fakewechat: wrong app kind")
	ErrFull       = errors.New("fakewechat: too many live codes or users")
	ErrBadInput   = errors.New("fakewechat: bad input")
)

// Lifetimes and bounds; see the package comment.
const (
	miniCodeTTL      = 5 * time.Minute
	webCodeTTL       = 10 * time.Minute
	phoneCodeTTL     = 5 * time.Minute
	tokenTTL         = 7200 * time.Second
	expiredTokenKeep = time.Hour        // how long an expired oauth token still answers 42001
	tokenGrace       = 5 * time.Minute  // cgi-bin/token: life of the previous token; stable_token: refresh window
	maxLiveCodes     = 1 << 20          // login + phone codes alive at once
	maxUsers         = 1 << 20          // users across all apps
	scanTTL          = 5 * time.Minute  // a QR page's scan session
	maxScans         = 1 << 16          // QR scan sessions alive at once
	maxFieldLen      = 1024             // any user field minted
	maxBodyBytes     = 64 << 10         // request bodies, API and control
	maxRecentUsers   = 8                // per app, offered on the phone page
	sweepEvery       = 10 * time.Second // of fake time, between purges
)

// Server is the fake WeChat, an http.Handler. It is safe for concurrent use.
type Server struct {
	clock    func() time.Time
	log      *slog.Logger
	mux      *http.ServeMux
	maxCodes int // maxLiveCodes; tests lower it
	maxUsers int // maxUsers; tests lower it
	maxScans int // maxScans; tests lower it
	public   string
	load     bool // Options.LoadCodes

	mu        sync.Mutex
	offset    time.Duration // added to clock() by Advance
	nextSweep time.Time
	apps      map[string]*appState
	codes     map[string]*loginCode        // wx.login and Open Platform codes
	phones    map[string]*phoneCode        // getPhoneNumber codes
	oauth     map[string]*oauthToken       // sns/oauth2 access tokens
	tokens    map[string]*serverToken      // cgi-bin access tokens, both families
	users     map[string]map[string]*User  // appid -> openid -> user
	unions    map[string]map[string]string // appid -> unionid -> openid
	scans     map[string]*scanSession      // QR scan sessions by id
	oa        oaFollow                     // official accounts (oafollow.go)
	nUsers    int
	fails     []failRule
	queues    [5]fifo // purge order; see the queue* constants
}

const (
	queueMiniCodes = iota
	queueWebCodes
	queuePhoneCodes
	queueOAuth
	queueScans
)

type appState struct {
	App
	stable []string // stable_token family, oldest first, at most 2
	plain  []string // cgi-bin/token family, oldest first, at most 2
	recent []string // openids of the users last minted for, newest first; the phone page offers them
}

type loginCode struct {
	appid  string
	kind   string
	openid string
	// unionid is set on load-mode codes only; a minted code's user carries its own.
	unionid string
	exp     time.Time
	used    bool // kept until exp so a second exchange answers 40163
	// An official account's code: the scope asked for, and whether the page
	// was a snapshot page (then openid is a virtual one).
	scope    string
	snapshot bool
}

type phoneCode struct {
	appid       string
	phone, pure string
	countryCode string
	exp         time.Time
}

type oauthToken struct {
	appid, openid string
	scope         string // snsapi_base tokens may not call sns/userinfo
	exp           time.Time
}

type serverToken struct {
	appid string
	exp   time.Time
	dead  time.Time // zero, or when a superseded token stops working (40001)
}

type failRule struct {
	path  string // "" matches every API path
	code  int
	count int
}

// New returns a fake WeChat knowing opts.Apps. It panics if an app is
// invalid (see App.Validate) or listed twice, or if opts.PublicURL is not
// empty or an http(s) URL (see ValidatePublicURL): that is a programming
// error; binaries validate their input with ParseApps and ValidatePublicURL
// first.
func New(opts Options) *Server {
	if opts.Apps == nil {
		opts.Apps = DefaultApps()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := ValidatePublicURL(opts.PublicURL); err != nil {
		panic("fakewechat.New: " + err.Error())
	}
	s := &Server{
		clock:    opts.Now,
		log:      opts.Logger,
		maxCodes: maxLiveCodes,
		maxUsers: maxUsers,
		maxScans: maxScans,
		public:   strings.TrimSuffix(opts.PublicURL, "/"),
		load:     opts.LoadCodes,
		apps:     make(map[string]*appState, len(opts.Apps)),
		codes:    make(map[string]*loginCode),
		phones:   make(map[string]*phoneCode),
		oauth:    make(map[string]*oauthToken),
		tokens:   make(map[string]*serverToken),
		users:    make(map[string]map[string]*User, len(opts.Apps)),
		unions:   make(map[string]map[string]string, len(opts.Apps)),
		scans:    make(map[string]*scanSession),
	}
	for _, a := range opts.Apps {
		if err := a.Validate(); err != nil {
			panic("fakewechat.New: " + err.Error())
		}
		if s.apps[a.AppID] != nil {
			panic("fakewechat.New: appid " + a.AppID + " listed twice")
		}
		s.apps[a.AppID] = &appState{App: a}
		s.users[a.AppID] = map[string]*User{}
		s.unions[a.AppID] = map[string]string{}
	}
	s.mux = s.routes()
	return s
}

// ServeHTTP serves the WeChat API paths and the /fake/ control endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// MintCode returns a fresh code for appid, as if user u had logged in on a
// phone: a wx.login code (for /sns/jscode2session) for a mini-program app, an
// sns/oauth2 code (for /sns/oauth2/access_token) for a web app, a mobile app
// (the SDK's SendAuth) or an official account (its web authorization with
// snsapi_userinfo; see MintOACode for the other cases).
//
// u.OpenID empty: the user is found by u.UnionID among this app's users, or
// is a new user with a random realistic openid. A known user's stored profile
// is updated with the non-empty fields of u. The user as stored is returned.
func (s *Server) MintCode(appid string, u User) (code string, user User, err error) {
	if err := validateUser(u); err != nil {
		return "", User{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	s.purgeLocked(now)
	return s.mintCodeLocked(now, appid, u)
}

// MintOACode is MintCode for an official account's web authorization with
// scope (snsapi_userinfo or snsapi_base); snapshot makes it the code of a
// snapshot page (a page opened from a Moments share): its exchange answers
// is_snapshotuser 1 with a virtual openid, not u's.
func (s *Server) MintOACode(appid string, u User, scope string, snapshot bool) (code string, user User, err error) {
	if err := validateUser(u); err != nil {
		return "", User{}, err
	}
	if scope != scopeUserInfo && scope != scopeBase {
		return "", User{}, fmt.Errorf("%w: scope %q is not %s or %s", ErrBadInput, scope, scopeUserInfo, scopeBase)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	s.purgeLocked(now)
	if app := s.apps[appid]; app != nil && app.Kind != api.KindOfficialAccount {
		return "", User{}, fmt.Errorf("%w: %s is %s, not an official account", ErrWrongKind, appid, app.Kind)
	}
	return s.mintOAuthCodeLocked(now, appid, u, scope, snapshot)
}

// mintCodeLocked is MintCode for a caller holding s.mu; u is validated.
func (s *Server) mintCodeLocked(now time.Time, appid string, u User) (code string, user User, err error) {
	return s.mintOAuthCodeLocked(now, appid, u, scopeUserInfo, false)
}

// mintOAuthCodeLocked mints any login code; scope and snapshot matter only
// for an official account's.
func (s *Server) mintOAuthCodeLocked(now time.Time, appid string, u User, scope string, snapshot bool) (code string, user User, err error) {
	app := s.apps[appid]
	if app == nil {
		return "", User{}, fmt.Errorf("%w %q", ErrUnknownApp, appid)
	}
	if len(s.codes)+len(s.phones) >= s.maxCodes {
		return "", User{}, ErrFull
	}
	stored, err := s.upsertUserLocked(appid, u)
	if err != nil {
		return "", User{}, err
	}
	app.recent = append([]string{stored.OpenID}, slices.DeleteFunc(app.recent, func(o string) bool {
		return o == stored.OpenID
	})...)
	if len(app.recent) > maxRecentUsers {
		app.recent = app.recent[:maxRecentUsers]
	}
	// wx.login and official-account codes live 5 minutes, Open Platform
	// codes (website, mobile app) 10.
	ttl, queue := miniCodeTTL, queueMiniCodes
	if app.Kind == api.KindWeb || app.Kind == api.KindApp {
		ttl, queue = webCodeTTL, queueWebCodes
	}
	lc := &loginCode{appid: appid, kind: app.Kind, openid: stored.OpenID}
	if app.Kind == api.KindOfficialAccount {
		lc.scope, lc.snapshot = scope, snapshot
		if snapshot {
			lc.openid = newOpenID() // virtual: nobody's
		}
	}
	code = newCode()
	exp := now.Add(ttl)
	lc.exp = exp
	s.codes[code] = lc
	s.queues[queue].push(code, exp)
	s.log.Debug("fakewechat: minted login code", "appid", appid, "kind", app.Kind)
	return code, *stored, nil
}

// MintPhoneCode returns a getPhoneNumber code of a mini-program app for
// phoneNumber: "+8613800138000", "+86 13800138000" or "13800138000" (pure
// digits: mainland China), or another country as "+1 4155550100" (the country
// code separated by a space or '-').
func (s *Server) MintPhoneCode(appid, phoneNumber string) (code string, err error) {
	cc, pure, err := parsePhone(phoneNumber)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	s.purgeLocked(now)
	app := s.apps[appid]
	if app == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownApp, appid)
	}
	if app.Kind != api.KindMiniProgram {
		return "", fmt.Errorf("%w: getPhoneNumber codes exist only for mini-programs, %s is %s", ErrWrongKind, appid, app.Kind)
	}
	if len(s.codes)+len(s.phones) >= s.maxCodes {
		return "", ErrFull
	}
	// Like WeChat: foreign numbers carry their country code, mainland ones do not.
	phone := pure
	if cc != "86" {
		phone = "+" + cc + " " + pure
	}
	code = newCode()
	exp := now.Add(phoneCodeTTL)
	s.phones[code] = &phoneCode{appid: appid, phone: phone, pure: pure, countryCode: cc, exp: exp}
	s.queues[queuePhoneCodes].push(code, exp)
	s.log.Debug("fakewechat: minted phone code", "appid", appid)
	return code, nil
}

// FailNext makes the next count calls of the API path (e.g.
// "/sns/jscode2session"; "" for any API path) answer errcode, without
// touching any state (a failed exchange does not spend the code). Rules queue
// up in call order. count <= 0 cancels the pending failures of path ("" for
// all of them); errcode 0 with a positive count does nothing. The /fake/
// control endpoints never fail.
func (s *Server) FailNext(path string, errcode int, count int) {
	if path != "" && !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if count <= 0 {
		kept := s.fails[:0]
		for _, f := range s.fails {
			if path != "" && f.path != path {
				kept = append(kept, f)
			}
		}
		s.fails = kept
		return
	}
	if errcode == 0 {
		return
	}
	s.fails = append(s.fails, failRule{path: path, code: errcode, count: count})
}

// Advance moves the fake clock forward by d; d <= 0 does nothing.
func (s *Server) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	s.mu.Lock()
	s.offset += d
	s.mu.Unlock()
}

func (s *Server) nowLocked() time.Time {
	return s.clock().Add(s.offset)
}

// takeFailureLocked returns the errcode a FailNext rule imposes on a call of
// path, or 0.
func (s *Server) takeFailureLocked(path string) int {
	for i := range s.fails {
		f := &s.fails[i]
		if f.path != "" && f.path != path {
			continue
		}
		code := f.code
		f.count--
		if f.count == 0 {
			s.fails = append(s.fails[:i], s.fails[i+1:]...)
		}
		return code
	}
	return 0
}

func validateUser(u User) error {
	for name, v := range map[string]string{"openid": u.OpenID, "unionid": u.UnionID, "nickname": u.Nickname,
		"headimgurl": u.HeadImgURL, "province": u.Province, "city": u.City, "country": u.Country} {
		if len(v) > maxFieldLen {
			return fmt.Errorf("%w: %s longer than %d bytes", ErrBadInput, name, maxFieldLen)
		}
	}
	for name, v := range map[string]string{"openid": u.OpenID, "unionid": u.UnionID} {
		if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fmt.Errorf("%w: %s contains spaces or control characters", ErrBadInput, name)
		}
	}
	if u.Sex < 0 || u.Sex > 2 {
		return fmt.Errorf("%w: sex %d is not 0, 1 or 2", ErrBadInput, u.Sex)
	}
	return nil
}

// upsertUserLocked finds or creates the user u names in appid's directory.
func (s *Server) upsertUserLocked(appid string, u User) (*User, error) {
	dir, unions := s.users[appid], s.unions[appid]
	openid := u.OpenID
	if openid == "" && u.UnionID != "" {
		openid = unions[u.UnionID] // same person, same app: same openid
	}
	if u.UnionID != "" {
		if owner, ok := unions[u.UnionID]; ok && owner != openid {
			return nil, fmt.Errorf("%w: unionid already belongs to another openid of app %s", ErrBadInput, appid)
		}
	}
	existing := dir[openid]
	if existing == nil {
		if s.nUsers >= s.maxUsers {
			return nil, ErrFull
		}
		if openid == "" {
			openid = newOpenID()
		}
		stored := u
		stored.OpenID = openid
		dir[openid] = &stored
		if stored.UnionID != "" {
			unions[stored.UnionID] = openid
		}
		s.nUsers++
		return &stored, nil
	}
	if u.UnionID != "" && existing.UnionID != "" && u.UnionID != existing.UnionID {
		return nil, fmt.Errorf("%w: openid already has another unionid", ErrBadInput)
	}
	if existing.UnionID == "" && u.UnionID != "" {
		existing.UnionID = u.UnionID
		unions[u.UnionID] = openid
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&existing.Nickname, u.Nickname)
	set(&existing.HeadImgURL, u.HeadImgURL)
	set(&existing.Province, u.Province)
	set(&existing.City, u.City)
	set(&existing.Country, u.Country)
	if u.Sex != 0 {
		existing.Sex = u.Sex
	}
	return existing, nil
}

// parsePhone splits a phone number into country code and national number.
func parsePhone(s string) (cc, pure string, err error) {
	s = strings.TrimSpace(s)
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w: phone number %s (want 13800138000, +8613800138000 or +1 4155550100)", ErrBadInput, why)
	}
	switch {
	case s == "":
		return bad("is empty")
	case strings.HasPrefix(s, "+"):
		rest := s[1:]
		if i := strings.IndexAny(rest, " -"); i >= 0 {
			cc, pure = rest[:i], strings.TrimSpace(rest[i+1:])
		} else if strings.HasPrefix(rest, "86") {
			cc, pure = "86", rest[2:]
		} else {
			return bad("needs a space or '-' after a country code other than +86")
		}
	default:
		cc, pure = "86", s
	}
	if !allDigits(cc) || len(cc) > 3 {
		return bad("has a bad country code")
	}
	if !allDigits(pure) || len(pure) < 5 || len(pure) > 15 {
		return bad("needs 5 to 15 digits")
	}
	return cc, pure, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// purgeLocked drops records that can no longer matter, at most every
// sweepEvery of fake time. Each queue holds one lifetime, so it is in expiry
// order and popping stops at the first live record.
func (s *Server) purgeLocked(now time.Time) {
	if now.Before(s.nextSweep) {
		return
	}
	s.nextSweep = now.Add(sweepEvery)
	dropCode := func(key string) {
		if c, ok := s.codes[key]; ok && !now.Before(c.exp) {
			delete(s.codes, key)
		}
	}
	s.queues[queueMiniCodes].popExpired(now, dropCode)
	s.queues[queueWebCodes].popExpired(now, dropCode)
	s.queues[queuePhoneCodes].popExpired(now, func(key string) {
		if c, ok := s.phones[key]; ok && !now.Before(c.exp) {
			delete(s.phones, key)
		}
	})
	s.queues[queueOAuth].popExpired(now, func(key string) {
		if t, ok := s.oauth[key]; ok && !now.Before(t.exp.Add(expiredTokenKeep)) {
			delete(s.oauth, key)
		}
	})
	s.queues[queueScans].popExpired(now, func(key string) {
		if sc, ok := s.scans[key]; ok && !now.Before(sc.exp) {
			delete(s.scans, key)
		}
	})
}

// fifo is a queue of keys with the time after which they may be dropped.
type fifo struct {
	items []fifoItem
	head  int
}

type fifoItem struct {
	key string
	at  time.Time
}

func (f *fifo) push(key string, at time.Time) {
	f.items = append(f.items, fifoItem{key: key, at: at})
}

func (f *fifo) popExpired(now time.Time, drop func(key string)) {
	for f.head < len(f.items) && !now.Before(f.items[f.head].at) {
		drop(f.items[f.head].key)
		f.items[f.head] = fifoItem{}
		f.head++
	}
	// Reuse the backing array once most of it is spent.
	if f.head > 64 && f.head*2 >= len(f.items) {
		n := copy(f.items, f.items[f.head:])
		clear(f.items[n:])
		f.items = f.items[:n]
		f.head = 0
	}
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns n characters drawn uniformly from alphabet.
func randomString(n int, alphabet string) string {
	// 256 % len(alphabet) bytes are rejected to keep the draw uniform.
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		rand.Read(buf)
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}

// newCode looks like a wx.login code: 32 alphanumerics.
func newCode() string { return randomString(32, alnum) }

// newOpenID looks like a real openid: "o" and 27 URL-safe characters.
func newOpenID() string { return "o" + randomString(27, alnum+"-_") }

// newAccessToken looks like a real access token: a version prefix and 120
// URL-safe characters.
func newAccessToken() string { return "86_" + randomString(120, alnum+"-_") }

// newSessionKey is base64 of 16 random bytes, like WeChat's session_key.
func newSessionKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// newRID looks like WeChat's request id in errmsg.
func newRID() string {
	const hex = "0123456789abcdef"
	return randomString(8, hex) + "-" + randomString(8, hex) + "-" + randomString(8, hex)
}
