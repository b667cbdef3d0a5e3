package fakewechat

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// These tests look inside the Server: bounded memory is not visible on the wire.

func (s *Server) sizes() (codes, phones, oauth, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.queues {
		queued += len(s.queues[i].items) - s.queues[i].head
	}
	return len(s.codes), len(s.phones), len(s.oauth), queued
}

// touch makes one API call, which is when the fake purges.
func touch(t *testing.T, s *Server) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathUserInfo+"?access_token=x&openid=y", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("touch: %d", rec.Code)
	}
}

func TestExpiredRecordsArePurged(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return t0 }})
	const n = 500
	var webCodes []string
	for range n {
		if _, _, err := s.MintCode(DevMiniProgramAppID, User{}); err != nil {
			t.Fatal(err)
		}
		code, _, err := s.MintCode(DevWebAppID, User{})
		if err != nil {
			t.Fatal(err)
		}
		webCodes = append(webCodes, code)
		if _, err := s.MintPhoneCode(DevMiniProgramAppID, "13800138000"); err != nil {
			t.Fatal(err)
		}
	}
	// Half the web codes become oauth tokens.
	for _, code := range webCodes[:n/2] {
		rec := httptest.NewRecorder()
		q := url.Values{"appid": {DevWebAppID}, "secret": {DevWebSecret}, "code": {code}, "grant_type": {"authorization_code"}}
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathOAuthAccessToken+"?"+q.Encode(), nil))
	}

	steps := []struct {
		advance                        time.Duration
		codes, phones, oauth, queuedAt int
	}{
		{0, 2 * n, n, n / 2, 3*n + n/2},
		{5 * time.Minute, n, 0, n / 2, n + n/2},                 // wx.login and phone codes gone
		{5 * time.Minute, 0, 0, n / 2, n / 2},                   // Open Platform codes gone
		{7200*time.Second - 10*time.Minute, 0, 0, n / 2, n / 2}, // tokens expired, kept to answer 42001
		{time.Hour, 0, 0, 0, 0},                                 // then gone
	}
	for i, st := range steps {
		s.Advance(st.advance)
		touch(t, s)
		codes, phones, oauth, queued := s.sizes()
		if codes != st.codes || phones != st.phones || oauth != st.oauth || queued != st.queuedAt {
			t.Errorf("step %d: codes %d phones %d oauth %d queued %d, want %d %d %d %d",
				i, codes, phones, oauth, queued, st.codes, st.phones, st.oauth, st.queuedAt)
		}
	}
	// The queues' backing arrays were compacted, not just skipped over.
	s.mu.Lock()
	for i := range s.queues {
		if len(s.queues[i].items) > 64 {
			t.Errorf("queue %d still holds %d slots", i, len(s.queues[i].items))
		}
	}
	s.mu.Unlock()
}

func TestLimits(t *testing.T) {
	s := New(Options{})
	s.maxCodes, s.maxUsers = 3, 2

	if _, _, err := s.MintCode(DevMiniProgramAppID, User{OpenID: "oA"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.MintCode(DevMiniProgramAppID, User{OpenID: "oB"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.MintCode(DevMiniProgramAppID, User{OpenID: "oC"}); !errors.Is(err, ErrFull) {
		t.Fatalf("third user: err = %v, want ErrFull", err)
	}
	// A known user still gets codes until the code limit.
	if _, _, err := s.MintCode(DevMiniProgramAppID, User{OpenID: "oA"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MintPhoneCode(DevMiniProgramAppID, "13800138000"); !errors.Is(err, ErrFull) {
		t.Fatalf("fourth code: err = %v, want ErrFull", err)
	}
	// Codes expire, and room comes back.
	s.Advance(5 * time.Minute)
	if _, err := s.MintPhoneCode(DevMiniProgramAppID, "13800138000"); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}
