package sessions

import (
	"context"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

// TestOAQRTicketScene: a follow-to-log-in ticket completes only by a push
// naming its scene (the secret half only WeChat has), never by a website
// callback, and a website ticket never by a scene.
func TestOAQRTicketScene(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	oa, err := f.svc.QRCreate(ctx, session.QRCreateRequest{Kind: api.KindOfficialAccount})
	if err != nil {
		t.Fatal(err)
	}
	ticket, secret, ok := session.ParseOAScene(oa.Scene)
	if !ok || ticket != oa.Ticket || len(secret) < 22 || len(oa.Scene) > 64 || oa.AppID != oaAppID || strings.Contains(oa.Scene, oa.PollToken) {
		t.Fatalf("ticket %+v", oa)
	}
	if rec := f.record(t, oa.Ticket); rec.Kind != api.KindOfficialAccount || rec.SceneHash == "" || strings.Contains(rec.SceneHash, secret) {
		t.Fatalf("record %+v", rec)
	}
	web := f.qrCreate(t)
	if web.Scene != "" {
		t.Fatalf("a website ticket has a scene: %+v", web)
	}
	other, _ := f.svc.QRCreate(ctx, session.QRCreateRequest{Kind: api.KindOfficialAccount})
	_, otherSecret, _ := session.ParseOAScene(other.Scene)

	for name, req := range map[string]session.QRCompleteRequest{
		"no scene (a website callback)": {Ticket: oa.Ticket, User: alice},
		"guessed secret":                {Ticket: oa.Ticket, Scene: session.OAScene(oa.Ticket, strings.Repeat("A", 22)), User: alice},
		"another ticket's secret":       {Ticket: oa.Ticket, Scene: session.OAScene(oa.Ticket, otherSecret), User: alice},
		"scene of another ticket":       {Ticket: oa.Ticket, Scene: other.Scene, User: alice},
		"the ticket as scene":           {Ticket: oa.Ticket, Scene: oa.Ticket, User: alice},
		"a scene on a website ticket":   {Ticket: web.Ticket, Scene: session.OAScene(web.Ticket, secret), User: alice},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.svc.QRComplete(ctx, req)
			wantCode(t, err, api.CodeQRTicketNotFound)
		})
	}
	if f.record(t, oa.Ticket).Status != session.QRPending || f.record(t, web.Ticket).Status != session.QRPending {
		t.Fatal("a refused completion changed a ticket")
	}

	st, err := f.svc.QRComplete(ctx, session.QRCompleteRequest{Ticket: oa.Ticket, Scene: oa.Scene, User: alice})
	if err != nil || st.Status != session.QRConfirmed {
		t.Fatalf("complete with the scene: %+v, %v", st, err)
	}
	// WeChat's retry of the push: the outcome stands.
	if st, err := f.svc.QRComplete(ctx, session.QRCompleteRequest{Ticket: oa.Ticket, Scene: oa.Scene, User: alice}); err != nil || st.Status != session.QRConfirmed {
		t.Fatalf("second completion: %+v, %v", st, err)
	}
	res, err := f.svc.QRConsume(ctx, session.QRConsumeRequest{Ticket: oa.Ticket, PollToken: oa.PollToken})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.verifier.Verify(res.AccessToken)
	if err != nil || c.Kind != api.KindOfficialAccount || c.ClientID != oaAppID {
		t.Fatalf("claims %+v, %v", c, err)
	}
	if _, err := f.svc.QRCreate(ctx, session.QRCreateRequest{Kind: "phone"}); err == nil {
		t.Fatal("an unknown kind made a ticket")
	}
}
