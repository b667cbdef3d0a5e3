package oapush

import (
	"bytes"
	"testing"
)

// FuzzParse: any body is a Message or ErrMalformed/ErrTooLarge, never a
// panic; what parses survives Marshal and Parse again unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(vecMsg))
	f.Add([]byte(`<!DOCTYPE xml [<!ENTITY a "b">]><xml><Content>&a;</Content></xml>`))
	f.Add([]byte(`<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[` + vecEncrypt + `]]></Encrypt></xml>`))
	f.Add([]byte(`<xml><Content>]]&gt;&amp;</Content><CreateTime>-1</CreateTime></xml>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Parse(body)
		if err != nil {
			return
		}
		m.Encrypt = "" // Marshal leaves it out
		back, err := Parse(m.Marshal())
		if err != nil {
			t.Fatalf("Marshal of a parsed push does not parse: %v\n%s", err, m.Marshal())
		}
		if !validXMLText(m) {
			return // characters XML cannot carry round-trip differently
		}
		if back != m {
			t.Fatalf("round trip: %+v\n != %+v", back, m)
		}
	})
}

// validXMLText reports whether every field survives CDATA as is: a
// carriage return is normalised by any XML parser.
func validXMLText(m Message) bool {
	for _, s := range []string{m.ToUserName, m.FromUserName, m.MsgType, m.Event, m.EventKey, m.Ticket, m.Content, m.MsgID} {
		if bytes.ContainsRune([]byte(s), '\r') {
			return false
		}
	}
	return true
}

// FuzzCipher: any Encrypt text decrypts or fails cleanly; any message
// sealed for an appid opens to itself for that appid only.
func FuzzCipher(f *testing.F) {
	f.Add(vecEncrypt, []byte(vecMsg), vecAppID)
	f.Add("", []byte{}, "")
	f.Add("AAAAAAAAAAAAAAAAAAAAAA==", []byte("x"), "wx1")
	f.Fuzz(func(t *testing.T, encrypted string, msg []byte, appID string) {
		c, err := NewCipher(vecKey, appID)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Decrypt(encrypted)
		if len(msg) > MaxBody/2 {
			return
		}
		var r [16]byte
		copy(r[:], msg)
		enc := c.Encrypt(r, msg)
		got, err := c.Decrypt(enc)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round trip: %q, %v", got, err)
		}
		other, _ := NewCipher(vecKey, appID+"x")
		if _, err := other.Decrypt(enc); err == nil {
			t.Fatal("another appid opened it")
		}
	})
}
