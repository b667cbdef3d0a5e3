package oapush

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// A safe-mode vector computed independently (Python's cryptography
// package, from the format description, not from this code).
const (
	vecKey     = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	vecAppID   = "wxb11529c136998cb6"
	vecRandom  = "aaaabbbbccccdddd"
	vecMsg     = "<xml><ToUserName><![CDATA[gh_3f2a1b4c5d6e]]></ToUserName><FromUserName><![CDATA[oUser123]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_abc]]></EventKey></xml>"
	vecEncrypt = "jn1L23DB+6ELqJ+6bruv24nXNcYv67c04L/tFuNwqMkzvH1hOwk2jmTry0Q1SdXs/916azt8ZxFhFVL5YKBVhQslll7T2xMILeZ3Cq5kX1l2yNdpIvle9+y5pRPqHapRLTVibLAJEFxal0RiMpH8c6EmdyIG+7+asRXjFjpLkP4kttIBHfq1hCko1pT3PZmmDTHoOHXYuDih4tNM1/SNZbGWKJrEpjNMVXTNswlHdcj62GtG9n82CQsQxTKLhbHEvprLEfdRUQNXSlbQCk0RfwPV5zVS9nqVAmV++DJwFyVJN1vze9x7K5HHu+rV8bRNJ5MCMiMkCxRIGUFT8qf+7tfc/2KKrcJFn83BFxNzVaT14coAzWBXMn79aJR0zEEvUB/PvKxzrQOi/L41M10dmoHFikvuI32x/pMg5KFE8SY="
	// sha1 of the sorted token, timestamp, nonce (and Encrypt), same source.
	vecSig    = "30d7c91db269b3e0cb3e1a131646b6d1ae4750f5"
	vecMsgSig = "8680ff4649aa350a67a831660ded597400656ac3"
)

func TestSignature(t *testing.T) {
	if got := Signature("testtoken", "1409304348", "xxxxxx"); got != vecSig {
		t.Fatalf("Signature = %s, want %s", got, vecSig)
	}
	if got := Signature("testtoken", "1409304348", "xxxxxx", vecEncrypt); got != vecMsgSig {
		t.Fatalf("msg_signature = %s, want %s", got, vecMsgSig)
	}
	if err := Verify(strings.ToUpper(vecSig), "xxxxxx", "testtoken", "1409304348"); err != nil {
		t.Fatalf("Verify (any order, upper-case hex): %v", err)
	}
	for _, bad := range []string{"", vecSig[:39], vecSig + "0", strings.Replace(vecSig, "3", "4", 1)} {
		if err := Verify(bad, "testtoken", "1409304348", "xxxxxx"); !errors.Is(err, ErrBadSignature) {
			t.Errorf("Verify(%q) = %v, want ErrBadSignature", bad, err)
		}
	}
	if err := Verify(vecSig, "othertoken", "1409304348", "xxxxxx"); !errors.Is(err, ErrBadSignature) {
		t.Error("another token verified")
	}
}

func vecCipher(t testing.TB, appID string) *Cipher {
	t.Helper()
	c, err := NewCipher(vecKey, appID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCipherVector(t *testing.T) {
	c := vecCipher(t, vecAppID)
	var r [16]byte
	copy(r[:], vecRandom)
	if got := c.Encrypt(r, []byte(vecMsg)); got != vecEncrypt {
		t.Fatalf("Encrypt = %s\nwant      %s", got, vecEncrypt)
	}
	msg, err := c.Decrypt(vecEncrypt)
	if err != nil || string(msg) != vecMsg {
		t.Fatalf("Decrypt = %q, %v", msg, err)
	}
	m, err := Parse(msg)
	if err != nil || m.FromUserName != "oUser123" || m.Scene() != "abc" || m.CreateTime != 1700000000 {
		t.Fatalf("Parse = %+v, %v", m, err)
	}
}

func TestCipherRefuses(t *testing.T) {
	for _, k := range []string{"", vecKey[:42], vecKey + "A", strings.Repeat("!", 43)} {
		if _, err := NewCipher(k, vecAppID); !errors.Is(err, ErrBadKey) {
			t.Errorf("NewCipher(%q) = %v", k, err)
		}
	}
	if _, err := vecCipher(t, "wxother").Decrypt(vecEncrypt); !errors.Is(err, ErrWrongAppID) {
		t.Fatalf("another appid: %v", err)
	}
	c := vecCipher(t, vecAppID)
	for name, enc := range map[string]string{
		"not base64":       "%%%",
		"empty":            "",
		"not whole blocks": vecEncrypt[:20] + "==",
		"truncated":        vecEncrypt[:len(vecEncrypt)-44] + "",
		"flipped":          "A" + vecEncrypt[1:],
	} {
		if _, err := c.Decrypt(enc); err == nil {
			t.Errorf("%s: decrypted", name)
		}
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	c := vecCipher(t, vecAppID)
	var r [16]byte
	reply := TextReply(Message{ToUserName: "gh_1", FromUserName: "oUser"}, "欢迎 ]]> back", 1700000001)
	env := c.Envelope("testtoken", r, reply, "1700000001", "n1")
	m, err := Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	// Parse keeps Encrypt; the signature is checked in the text.
	if !bytes.Contains(env, []byte("<MsgSignature><![CDATA["+Signature("testtoken", "1700000001", "n1", m.Encrypt)+"]]>")) {
		t.Fatalf("envelope signature missing: %s", env)
	}
	inner, err := c.Decrypt(m.Encrypt)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(inner)
	if err != nil || got.Content != "欢迎 ]]> back" || got.ToUserName != "oUser" || got.FromUserName != "gh_1" || got.MsgType != "text" {
		t.Fatalf("reply = %+v, %v", got, err)
	}
	body, enc := c.SealPush("gh_1", r, []byte(vecMsg))
	p, err := Parse(body)
	if err != nil || p.Encrypt != enc || p.ToUserName != "gh_1" {
		t.Fatalf("SealPush = %s, %v", body, err)
	}
}

func TestParse(t *testing.T) {
	m, err := Parse([]byte(`<?xml version="1.0"?>
<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oA]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[scan]]></Event><EventKey><![CDATA[sceneX]]></EventKey><Ticket><![CDATA[T]]></Ticket><Unknown>x</Unknown></xml>
`))
	if err != nil || m.Scene() != "sceneX" || m.Ticket != "T" {
		t.Fatalf("lower-case scan: %+v, %v", m, err)
	}
	for name, tc := range map[string]struct {
		m     Message
		scene string
	}{
		"subscribe from a code": {Message{MsgType: "event", Event: "subscribe", EventKey: "qrscene_s1"}, "s1"},
		"plain follow":          {Message{MsgType: "event", Event: "subscribe"}, ""},
		"SCAN":                  {Message{MsgType: "event", Event: "SCAN", EventKey: "s1"}, "s1"},
		"menu click":            {Message{MsgType: "event", Event: "CLICK", EventKey: "qrscene_s1"}, ""},
		"text message":          {Message{MsgType: "text", Event: "SCAN", EventKey: "s1"}, ""},
		"unsubscribe":           {Message{MsgType: "event", Event: "unsubscribe"}, ""},
	} {
		if got := tc.m.Scene(); got != tc.scene {
			t.Errorf("%s: Scene = %q, want %q", name, got, tc.scene)
		}
		back, err := Parse(tc.m.Marshal())
		if err != nil || back != tc.m {
			t.Errorf("%s: round trip = %+v, %v", name, back, err)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"doctype":          `<!DOCTYPE xml [<!ENTITY a "aaaaaaaa">]><xml><Content>&a;</Content></xml>`,
		"external entity":  `<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>`,
		"undefined entity": `<xml><Content>&e;</Content></xml>`,
		"two roots":        `<xml></xml><xml></xml>`,
		"other root":       `<msg></msg>`,
		"trailing text":    `<xml></xml>junk`,
		"unclosed":         `<xml><Content>`,
		"empty":            ``,
		"late proc inst":   `<xml></xml><?php x?>`,
		"bad CreateTime":   `<xml><CreateTime>soon</CreateTime></xml>`,
	} {
		if _, err := Parse([]byte(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
	}
	big := "<xml><Content>" + strings.Repeat("a", MaxBody) + "</Content></xml>"
	if _, err := Parse([]byte(big)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("large body: %v", err)
	}
}
