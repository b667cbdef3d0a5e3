package main

// The bare chain: the least a WeChat login of wxlogin's shape costs on this
// machine, as the baseline the report divides by. Three programs, like the
// three services: a gin front (bare-gateway) asks over NATS a login worker
// (bare-login: the WeChat call and one prepared Postgres upsert) and then a
// signer (bare-sign: one EdDSA JWT). No validation, no events, no refresh
// token, no revocation view. Each runs as `bench bare-…` in its own process,
// configured by the environment.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/wxlogin/wxlogin/shared/natsconn"
)

const (
	bareLoginSubject = "bare.login"
	bareSignSubject  = "bare.sign"
	bareQueue        = "bare"
	// bareInFlight bounds the requests a worker handles at once, as
	// natsrpc's pool does for the services.
	bareInFlight = 256
)

type bareLoginReply struct {
	UserID string `json:"user_id,omitempty"`
	IsNew  bool   `json:"is_new_user"`
	Error  string `json:"error,omitempty"`
}

type bareSignReply struct {
	Token string `json:"token,omitempty"`
	Error string `json:"error,omitempty"`
}

// bareEnv reads the bare chain's settings: NATS URL, and per program the
// listen address, the fake WeChat and the database.
func bareEnv(key string) string { return os.Getenv("BENCH_BARE_" + key) }

func bareConnect(name string) (*nats.Conn, error) {
	return natsconn.Connect(natsconn.Options{URL: bareEnv("NATS_URL"), Name: name, Log: slog.New(slog.DiscardHandler)})
}

// serveBare answers subject with handle, each request in its own goroutine,
// at most bareInFlight at once, until SIGTERM.
func serveBare(nc *nats.Conn, subject string, handle func(data []byte) any) error {
	sem := make(chan struct{}, bareInFlight)
	_, err := nc.QueueSubscribe(subject, bareQueue, func(m *nats.Msg) {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			b, _ := json.Marshal(handle(m.Data))
			_ = m.Respond(b)
		}()
	})
	if err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	return nc.Drain()
}

// bareLogin is the login worker: jscode2session, then one upsert.
func bareLogin() error {
	db, err := sql.Open("postgres", bareEnv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS bare_users (
		id uuid PRIMARY KEY, openid text NOT NULL UNIQUE, session_key text NOT NULL, last_login_at timestamptz NOT NULL)`); err != nil {
		return err
	}
	upsert, err := db.Prepare(`INSERT INTO bare_users (id, openid, session_key, last_login_at) VALUES ($1, $2, $3, now())
		ON CONFLICT (openid) DO UPDATE SET session_key = EXCLUDED.session_key, last_login_at = EXCLUDED.last_login_at
		RETURNING id, xmax = 0`)
	if err != nil {
		return err
	}
	wx := &http.Client{Timeout: 2500 * time.Millisecond, Transport: &http.Transport{MaxIdleConnsPerHost: bareInFlight}}
	base := bareEnv("WECHAT_API_BASE") + "/sns/jscode2session?appid=" + url.QueryEscape(bareEnv("APPID")) +
		"&secret=" + url.QueryEscape(bareEnv("SECRET")) + "&grant_type=authorization_code&js_code="
	nc, err := bareConnect("bare-login")
	if err != nil {
		return err
	}
	return serveBare(nc, bareLoginSubject, func(data []byte) any {
		var req struct{ Code string }
		_ = json.Unmarshal(data, &req)
		resp, err := wx.Get(base + url.QueryEscape(req.Code))
		if err != nil {
			return bareLoginReply{Error: "wechat_unavailable"}
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var s struct {
			OpenID     string `json:"openid"`
			SessionKey string `json:"session_key"`
		}
		if json.Unmarshal(body, &s) != nil || s.OpenID == "" {
			return bareLoginReply{Error: "wechat_code_invalid"}
		}
		var r bareLoginReply
		if err := upsert.QueryRow(uuid.New(), s.OpenID, s.SessionKey).Scan(&r.UserID, &r.IsNew); err != nil {
			return bareLoginReply{Error: "storage"}
		}
		return r
	})
}

// bareSign is the signer: one EdDSA access token per request.
func bareSign() error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	nc, err := bareConnect("bare-sign")
	if err != nil {
		return err
	}
	return serveBare(nc, bareSignSubject, func(data []byte) any {
		var req struct {
			UserID string `json:"user_id"`
		}
		_ = json.Unmarshal(data, &req)
		now := time.Now()
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.RegisteredClaims{
			Issuer: "bare", Subject: req.UserID, Audience: jwt.ClaimStrings{"bare"}, ID: uuid.NewString(),
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(2 * time.Hour)),
		})
		s, err := tok.SignedString(key)
		if err != nil {
			return bareSignReply{Error: "sign"}
		}
		return bareSignReply{Token: s}
	})
}

// bareGateway is the front: POST /login {"code":…} → login → sign.
func bareGateway() error {
	nc, err := bareConnect("bare-gateway")
	if err != nil {
		return err
	}
	defer nc.Close()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/readyz", func(c *gin.Context) { c.Status(http.StatusOK) })
	r.POST("/login", func(c *gin.Context) {
		var req struct {
			Code string `json:"code"`
		}
		if err := c.ShouldBindJSON(&req); err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"code": "invalid_request"})
			return
		}
		var login bareLoginReply
		if err := bareCall(c, nc, bareLoginSubject, req, &login); err != nil || login.Error != "" {
			c.JSON(http.StatusServiceUnavailable, gin.H{"code": "login " + login.Error})
			return
		}
		var sign bareSignReply
		if err := bareCall(c, nc, bareSignSubject, map[string]string{"user_id": login.UserID}, &sign); err != nil || sign.Error != "" {
			c.JSON(http.StatusServiceUnavailable, gin.H{"code": "sign " + sign.Error})
			return
		}
		c.JSON(http.StatusOK, gin.H{"access_token": sign.Token, "token_type": "Bearer", "user_id": login.UserID, "is_new_user": login.IsNew})
	})
	ln, err := net.Listen("tcp", bareEnv("HTTP_ADDR"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func bareCall(c *gin.Context, nc *nats.Conn, subject string, req, resp any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, subject, b)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	return json.Unmarshal(m.Data, resp)
}
