package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/wechat/oapush"
)

// Follow-to-log-in QR codes of an official account and its server URL
// (docs/api.md, "Follow-to-log-in QR codes"). The gateway holds none of the
// account's secrets: identity checks the signatures, decrypts and parses
// the pushes; the gateway completes the ticket a push names, which wakes
// the waiting poll as a website QR callback does.
const (
	oaQRPath      = "/api/v1/auth/oa/qr" // the follow tickets' cookie path: their polls
	oaEventsRoute = "/wechat/oa/:appid/events"
	maxOAAppID    = 32
)

func (s *server) registerOAFollow(v1 *gin.RouterGroup) {
	v1.POST("/auth/oa/qr", s.ipLimit, s.createOAQR)
	v1.GET("/auth/oa/qr/:ticket", s.pollQR) // the web QR poll: the ticket says its kind
	// WeChat's servers: no per-address limit (many follows come from few
	// addresses); a bad signature costs them nothing but a NATS round trip.
	v1.GET(oaEventsRoute, s.oaVerify)
	v1.POST(oaEventsRoute, s.oaPush)
}

// oaQRResponse is the answer to POST /api/v1/auth/oa/qr.
type oaQRResponse struct {
	Ticket    string `json:"ticket"`
	PollToken string `json:"poll_token"`
	ExpiresIn int64  `json:"expires_in"`
	QRURL     string `json:"qr_url"`
	QRContent string `json:"qr_content"`
}

// createOAQR starts a follow-to-log-in: session makes the ticket and its
// secret scene, identity a temporary QR_STR_SCENE code at WeChat.
func (s *server) createOAQR(c *gin.Context) {
	t, ok := s.newTicket(c, api.KindOfficialAccount)
	if !ok {
		return
	}
	if _, _, ok := session.ParseOAScene(t.Scene); !ok {
		s.fail(c, fmt.Errorf("session answered an official-account ticket without a scene"))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), wechatCallTimeout)
	qr, err := s.identity.OAQRCreate(ctx, identity.OAQRCreateRequest{App: t.AppID, Scene: t.Scene, ExpireSeconds: t.ExpiresIn})
	cancel()
	if err != nil {
		s.fail(c, err) // the ticket expires unused
		return
	}
	s.setTicketCookie(c, t, s.web.followCookiePath)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, oaQRResponse{Ticket: t.Ticket, PollToken: t.PollToken, ExpiresIn: t.ExpiresIn,
		QRURL: qr.QRURL, QRContent: qr.QRContent})
}

// oaSigned reads the signed query of a server URL request; false when the
// appid in the path cannot be one (404, as for an unknown account).
func (s *server) oaSigned(c *gin.Context) (identity.OASigned, bool) {
	appid := c.Param("appid")
	if appid == "" || len(appid) > maxOAAppID || !isVisibleASCII(appid) {
		s.fail(c, api.Errorf(api.CodeNotFound, "no such official account"))
		return identity.OASigned{}, false
	}
	q := c.Request.URL.Query()
	return identity.OASigned{AppID: appid, Signature: q.Get("signature"), Timestamp: q.Get("timestamp"), Nonce: q.Get("nonce")}, true
}

// oaVerify answers WeChat's check of the server URL: the echostr as it is,
// only with a valid signature (401 signature_invalid otherwise).
func (s *server) oaVerify(c *gin.Context) {
	signed, ok := s.oaSigned(c)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	res, err := s.identity.OAVerify(ctx, identity.OAVerifyRequest{OASigned: signed, Echostr: c.Query("echostr")})
	cancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(res.Echostr))
}

// oaPush takes an event or message push. identity checks and handles it;
// a follow or scan of one of our codes completes the ticket its scene
// names. The answer is identity's reply ("success", or a message for the
// user). A failure the retry may cure answers 503: WeChat retries, and
// identity answers the retry with the first result, so a completion lost
// here happens then and nothing else is done twice.
func (s *server) oaPush(c *gin.Context) {
	signed, ok := s.oaSigned(c)
	if !ok {
		return
	}
	body, err := readBodyMax(c, oapush.MaxBody)
	if err != nil {
		s.fail(c, err)
		return
	}
	q := c.Request.URL.Query()
	// The push is for the person waiting at the QR code, not for WeChat's
	// connection: it is finished even if WeChat stops waiting.
	ctx := context.WithoutCancel(c.Request.Context())
	ictx, cancel := context.WithTimeout(ctx, wechatCallTimeout)
	res, err := s.identity.OAPush(ictx, identity.OAPushRequest{OASigned: signed, EncryptType: q.Get("encrypt_type"),
		MsgSignature: q.Get("msg_signature"), Body: body})
	cancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	if res.Scene != "" {
		completed, err := s.completeOAQR(ctx, c, res)
		if err != nil {
			s.fail(c, err)
			return
		}
		if completed && res.LoginReply != "" {
			// The follower is told only of a login that happened.
			c.Data(http.StatusOK, "application/xml; charset=utf-8", []byte(res.LoginReply))
			return
		}
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(res.Reply))
}

// completeOAQR records a follow-to-log-in push's outcome under the ticket
// its scene names; completed reports that the ticket now holds it. A
// ticket gone or expired (a late scan, a guessed scene, or a retry after
// the tokens went out) is no failure: the push is done.
func (s *server) completeOAQR(ctx context.Context, c *gin.Context, res identity.OAPushResult) (completed bool, err error) {
	ticket, _, ok := session.ParseOAScene(res.Scene)
	if !ok || !validTicket(ticket) {
		return false, nil // identity checked the scene's shape; not ours after all
	}
	req := session.QRCompleteRequest{Ticket: ticket, Scene: res.Scene}
	switch {
	case res.Login != nil:
		user := res.Login.User
		req.User, req.IsNewUser = &user, res.Login.IsNewUser
		middleware.SetUserID(c, user.ID)
	case res.BindToken != "":
		req.BindToken = res.BindToken
	default:
		return false, nil
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	st, err := s.session.QRComplete(cctx, req)
	cancel()
	var ae *api.Error
	if errors.As(err, &ae) && (ae.Code == api.CodeQRTicketNotFound || ae.Code == api.CodeQRTicketExpired) {
		s.log.LogAttrs(ctx, slog.LevelInfo, "follow-to-log-in push for a ticket that is gone",
			slog.String("request_id", middleware.RequestIDOf(c)), slog.String("code", string(ae.Code)), slog.Bool("retry", res.Duplicate))
		return false, nil
	}
	if err != nil {
		if _, unexpected := problem.For(err, middleware.RequestIDOf(c)); unexpected {
			s.log.LogAttrs(ctx, slog.LevelError, "cannot record the follow-to-log-in outcome",
				slog.String("request_id", middleware.RequestIDOf(c)), slog.Any("error", err))
		}
		return false, api.Errorf(api.CodeServiceUnavailable, "the login could not be recorded; WeChat will retry")
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "follow-to-log-in push completed a ticket",
		slog.String("request_id", middleware.RequestIDOf(c)), slog.String("status", st.Status), slog.Bool("retry", res.Duplicate))
	want := session.QRConfirmed
	if req.BindToken != "" {
		want = session.QRNotBound
	}
	return st.Status == want, nil
}
