package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// TestMiniProgramClientLibrary runs the Node tests of clients/miniprogram
// against gateway, identity and session as processes, with access tokens
// that expire for real within seconds. WeChat is our fake, whose control
// API mints the codes the tests' wx.login returns; a control server of the
// test's own lets them stop and start identity, for a refresh answered 503.
func TestMiniProgramClientLibrary(t *testing.T) {
	fake := httptest.NewServer(fakewechat.New(fakewechat.Options{Apps: []fakewechat.App{
		{AppID: standInMiniAppID, Secret: standInMiniSecret, Kind: api.KindMiniProgram},
	}}))
	t.Cleanup(fake.Close)
	// The last value of a variable wins: identity talks to the fake, not to
	// the stand-in startProcs sets up.
	p := startProcs(t, "WXLOGIN_ACCESS_TTL=2s", "WXLOGIN_WECHAT_API_BASE="+fake.URL)
	control := httptest.NewServer(identitySwitch(p))
	t.Cleanup(control.Close) // before the processes stop: no handler outlives the test
	runNodeTests(t, "clients/miniprogram/test",
		"WXLOGIN_TEST_BASE_URL="+p.base,
		"WXLOGIN_TEST_FAKE_URL="+fake.URL,
		"WXLOGIN_TEST_APPID="+standInMiniAppID,
		"WXLOGIN_TEST_CONTROL_URL="+control.URL,
	)
}

// identitySwitch serves POST /identity/kill (SIGKILL) and POST
// /identity/start (answered once the gateway is ready again).
func identitySwitch(p *procStack) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /identity/kill", func(w http.ResponseWriter, r *http.Request) {
		p.kill("identity")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /identity/start", func(w http.ResponseWriter, r *http.Request) {
		p.start("identity")
		if err := waitReady(r.Context(), p.url("/readyz"), 30*time.Second); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
