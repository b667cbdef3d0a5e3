package wxauth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/singleflight"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/jssetup"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/wechat"
)

// BucketWechat caches each app's server access token for every identity
// replica: WeChat's tokens are per app, and replicas fetching their own
// would be refused as "not latest" (docs/wechat.md).
const BucketWechat = "wxlogin_wechat"

const (
	// tokenBucketTTL: WeChat's tokens live 7200s, so an entry never
	// outlives its token by much.
	tokenBucketTTL = 2 * time.Hour
	// refreshBefore: stable_token hands out a new token in the old one's
	// last 5 minutes; we stop using a token then too.
	refreshBefore = 5 * time.Minute
	// fetchTimeout bounds a shared fetch, which outlives the caller that
	// started it when others wait for it.
	fetchTimeout = 5 * time.Second
)

// cachedToken is a BucketWechat value. The access token is a credential of
// the app: it stays inside NATS and is never logged.
type cachedToken struct {
	AccessToken string    `json:"access_token"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// TokenCache hands out server access tokens (cgi-bin/stable_token), shared
// through KV. Within a replica, concurrent fetches for an app are one.
type TokenCache struct {
	wc  *wechat.Client
	kv  *jssetup.Bucket
	log *slog.Logger
	now func() time.Time

	flight singleflight.Group
}

// BucketConfig is BucketWechat in replicas copies. Its cap: one token per
// app, rewritten in place; 1,000 apps of 4 KiB (a token of up to 512
// characters with KV overhead) are 4 MiB.
func BucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket: BucketWechat, Description: "wxlogin WeChat server access tokens", TTL: tokenBucketTTL, History: 1, Replicas: replicas,
		MaxBytes: 4 << 20, MaxValueSize: 4 << 10,
	}
}

// NewTokenCache returns a cache over the JetStream js (bucket created on
// first use, in replicas copies).
func NewTokenCache(wc *wechat.Client, js jetstream.JetStream, replicas int, log *slog.Logger) *TokenCache {
	return &TokenCache{wc: wc, kv: jssetup.NewBucket(js, BucketConfig(replicas)), log: log, now: time.Now}
}

func (c *TokenCache) bucket(ctx context.Context) (jetstream.KeyValue, error) { return c.kv.KV(ctx) }

// cached returns the shared token of app if it is still good for a while.
// KV trouble is logged and treated as a miss: WeChat is the source.
func (c *TokenCache) cached(ctx context.Context, app apps.App) (string, bool) {
	kv, err := c.bucket(ctx)
	if err == nil {
		var e jetstream.KeyValueEntry
		e, err = kv.Get(ctx, app.AppID)
		if err == nil {
			var t cachedToken
			if json.Unmarshal(e.Value(), &t) == nil && t.AccessToken != "" && t.ExpiresAt.Sub(c.now()) > refreshBefore {
				return t.AccessToken, true
			}
			return "", false
		}
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		c.log.Warn("access token cache unavailable", "appid", app.AppID, "request_id", natsrpc.RequestID(ctx), "error", err)
	}
	return "", false
}

// fetch gets a token from WeChat and shares it. force: WeChat invalidates
// the current token and issues a new one (a few a day are allowed).
func (c *TokenCache) fetch(ctx context.Context, app apps.App, force bool) (string, error) {
	key := app.AppID
	if force {
		key += "\x00force"
	}
	ctx = context.WithoutCancel(ctx)
	v, err, _ := c.flight.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		at, err := c.wc.StableToken(ctx, app.AppID, app.Secret, force)
		if err != nil {
			return "", err
		}
		t := cachedToken{AccessToken: at.AccessToken, ExpiresAt: c.now().Add(time.Duration(at.ExpiresIn) * time.Second)}
		data, _ := json.Marshal(t)
		kv, err := c.bucket(ctx)
		if err == nil {
			_, err = kv.Put(ctx, app.AppID, data)
		}
		if err != nil {
			c.log.Warn("access token not shared", "appid", app.AppID, "error", err)
		}
		c.log.Info("wechat access token fetched", "appid", app.AppID, "force_refresh", force, "expires_in", at.ExpiresIn)
		return at.AccessToken, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// Token returns a valid server access token of app.
func (c *TokenCache) Token(ctx context.Context, app apps.App) (string, error) {
	if t, ok := c.cached(ctx, app); ok {
		return t, nil
	}
	return c.fetch(ctx, app, false)
}

// Refresh replaces stale, a token WeChat refused: by the one another
// replica already put in its place, else by a force-refreshed one.
func (c *TokenCache) Refresh(ctx context.Context, app apps.App, stale string) (string, error) {
	if t, ok := c.cached(ctx, app); ok && t != stale {
		return t, nil
	}
	return c.fetch(ctx, app, true)
}

// PhoneNumber exchanges a getPhoneNumber code for the phone number as
// WeChat gives it (with its country code when not mainland China). A token
// WeChat calls invalid or expired (40001, 42001) is refreshed and the call
// retried once.
func (e *Exchanger) PhoneNumber(ctx context.Context, app apps.App, code string) (string, error) {
	if code == "" {
		return "", api.Errorf(api.CodeCodeMissing, "code is required")
	}
	var info wechat.PhoneInfo
	err := e.withServerToken(ctx, app, callPhone, func(token string) (err error) {
		info, err = e.wc.PhoneNumber(ctx, token, code)
		return err
	})
	if err != nil {
		return "", err
	}
	if info.WatermarkAppID != "" && info.WatermarkAppID != app.AppID {
		e.log.Error("wechat phone number carries another app's watermark", "appid", app.AppID,
			"request_id", natsrpc.RequestID(ctx))
		return "", api.Errorf(api.CodeWechatError, "WeChat refused the request")
	}
	phone := info.PhoneNumber
	if phone == "" {
		phone = info.PurePhoneNumber
	}
	return phone, nil
}

// withServerToken runs call with the app's shared server access token; a
// token WeChat calls invalid or expired (40001, 42001) is refreshed and the
// call made once more. Errors come back translated.
func (e *Exchanger) withServerToken(ctx context.Context, app apps.App, name string, call func(token string) error) error {
	token, err := e.tokens.Token(ctx, app)
	if err != nil {
		return e.translate(ctx, app, callStableToken, err)
	}
	err = call(token)
	if c := wechat.ErrCode(err); c == wechat.ErrCodeInvalidCredential || c == wechat.ErrCodeAccessTokenExpiry {
		e.log.Info("wechat refused the access token; refreshing", "appid", app.AppID,
			"request_id", natsrpc.RequestID(ctx), "errcode", c, "call", name)
		if token, err = e.tokens.Refresh(ctx, app, token); err != nil {
			return e.translate(ctx, app, callStableToken, err)
		}
		err = call(token)
	}
	if err != nil {
		return e.translate(ctx, app, name, err)
	}
	return nil
}
