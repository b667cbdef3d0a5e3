package fakewechat

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func qrconnectURL(state string) string {
	q := url.Values{"appid": {DevWebAppID}, "redirect_uri": {"https://site.example/cb"}, "response_type": {"code"},
		"scope": {"snsapi_login"}, "state": {state}}
	return PathQRConnect + "?" + q.Encode()
}

func showQR(s *Server) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, qrconnectURL("s"), nil))
	return rec
}

func (s *Server) scanCount() (live, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[queueScans]
	return len(s.scans), len(q.items) - q.head
}

func TestScansPurged(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return t0 }})
	const n = 300
	if rec := showQR(s); rec.Code != http.StatusOK {
		t.Fatalf("QR page: %d", rec.Code)
	}
	// The rest directly: drawing 300 QR codes under -race takes seconds.
	req, pe := s.parseQRConnect(url.Values{"appid": {DevWebAppID}, "redirect_uri": {"https://site.example/cb"},
		"response_type": {"code"}, "scope": {"snsapi_login"}})
	if pe != nil {
		t.Fatal(pe)
	}
	s.mu.Lock()
	for range n - 1 {
		if _, err := s.newScanLocked(s.nowLocked(), req); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Unlock()
	if live, queued := s.scanCount(); live != n || queued != n {
		t.Fatalf("live %d queued %d, want %d", live, queued, n)
	}
	s.Advance(scanTTL)
	touch(t, s)
	if live, queued := s.scanCount(); live != 0 || queued != 0 {
		t.Errorf("after expiry: live %d queued %d, want 0", live, queued)
	}
}

func TestScanLimit(t *testing.T) {
	s := New(Options{})
	s.maxScans = 2
	for range 2 {
		if rec := showQR(s); rec.Code != http.StatusOK {
			t.Fatalf("QR page: %d", rec.Code)
		}
	}
	rec := showQR(s)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "系统繁忙") ||
		rec.Header().Get("Retry-After") == "" {
		t.Fatalf("QR page past the limit: %d %s", rec.Code, rec.Body)
	}
	if _, err := s.ScanAndConfirm("http://open.example"+qrconnectURL("s"), User{}, true); !errors.Is(err, ErrFull) {
		t.Errorf("ScanAndConfirm past the limit: %v, want ErrFull", err)
	}
	// Scan sessions expire, and room comes back.
	s.Advance(scanTTL)
	if rec := showQR(s); rec.Code != http.StatusOK {
		t.Fatalf("after expiry: %d", rec.Code)
	}
	// ScanAndConfirm leaves no session behind, answered or not.
	before, _ := s.scanCount()
	if _, err := s.ScanAndConfirm("http://open.example"+qrconnectURL("s"), User{}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ScanAndConfirm("http://open.example"+qrconnectURL("s"), User{OpenID: "o1", UnionID: "u"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ScanAndConfirm("http://open.example"+qrconnectURL("s"), User{OpenID: "o2", UnionID: "u"}, true); !errors.Is(err, ErrBadInput) {
		t.Fatalf("unionid clash: %v", err)
	}
	if after, _ := s.scanCount(); after != before {
		t.Errorf("ScanAndConfirm left %d sessions behind", after-before)
	}
}

func TestRecentUsersBounded(t *testing.T) {
	s := New(Options{})
	for i := range 3 * maxRecentUsers {
		if _, _, err := s.MintCode(DevWebAppID, User{OpenID: "o" + strings.Repeat("x", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	// Minting for a known user moves it to the front without a duplicate.
	if _, _, err := s.MintCode(DevWebAppID, User{OpenID: "ox"}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	recent := append([]string(nil), s.apps[DevWebAppID].recent...)
	s.mu.Unlock()
	if len(recent) != maxRecentUsers || recent[0] != "ox" {
		t.Errorf("recent = %v, want %d entries, ox first", recent, maxRecentUsers)
	}
	seen := map[string]bool{}
	for _, o := range recent {
		if seen[o] {
			t.Errorf("recent lists %s twice", o)
		}
		seen[o] = true
	}
}
