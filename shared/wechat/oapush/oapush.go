// Package oapush is the official account's server URL protocol: the
// signatures of the verification and of every push, the XML of pushes and
// replies, and safe mode's AES envelope (docs/wechat.md, "Official account
// event pushes"). It is pure: no I/O, no clock, no randomness it does not
// take as an argument.
package oapush

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// MaxBody bounds a push body. WeChat's are well under 4 KiB (a text message
// is at most 2,048 bytes of content); safe mode grows a push by a third.
const MaxBody = 64 << 10

// Errors of this package. Callers answer all of them as the sender's
// mistake; none carries the input.
var (
	ErrBadSignature = errors.New("oapush: signature mismatch")
	ErrMalformed    = errors.New("oapush: malformed push")
	ErrTooLarge     = errors.New("oapush: push too large")
	ErrBadKey       = errors.New("oapush: EncodingAESKey must be 43 base64 characters")
	ErrWrongAppID   = errors.New("oapush: push encrypted for another appid")
)

// Signature is WeChat's signature over parts: the lowercase hex SHA-1 of
// the parts sorted and concatenated. The verification and a push sign
// token, timestamp, nonce; safe mode's msg_signature adds the Encrypt text.
func Signature(parts ...string) string {
	s := slices.Clone(parts)
	slices.Sort(s)
	sum := sha1.Sum([]byte(strings.Join(s, "")))
	return hex.EncodeToString(sum[:])
}

// Verify checks sig against Signature(parts...) in constant time.
func Verify(sig string, parts ...string) error {
	want := Signature(parts...)
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(sig)), []byte(want)) != 1 {
		return ErrBadSignature
	}
	return nil
}

// Message is a push as the official account's server receives it, after
// decryption. Only the fields wxlogin reads or passes on are kept.
type Message struct {
	ToUserName   string `xml:"ToUserName"`
	FromUserName string `xml:"FromUserName"`
	CreateTime   int64  `xml:"CreateTime"`
	MsgType      string `xml:"MsgType"`
	Event        string `xml:"Event"`
	EventKey     string `xml:"EventKey"`
	Ticket       string `xml:"Ticket"`
	Content      string `xml:"Content"`
	MsgID        string `xml:"MsgId"`
	// Encrypt is safe mode's envelope: the whole message, encrypted.
	Encrypt string `xml:"Encrypt"`
}

// Event names (MsgType "event"). WeChat has been seen to send "scan" in
// lower case: compare with strings.EqualFold.
const (
	MsgTypeEvent     = "event"
	EventSubscribe   = "subscribe"
	EventUnsubscribe = "unsubscribe"
	EventScan        = "SCAN"
	// ScenePrefix starts a subscribe's EventKey when the follow came from
	// a parametric QR code; a SCAN's EventKey is the bare scene.
	ScenePrefix = "qrscene_"
)

// Scene is the parametric QR code's scene of a subscribe or SCAN event, ""
// for any other message (a plain follow has an empty EventKey).
func (m Message) Scene() string {
	if m.MsgType != MsgTypeEvent {
		return ""
	}
	switch {
	case strings.EqualFold(m.Event, EventSubscribe):
		s, _ := strings.CutPrefix(m.EventKey, ScenePrefix)
		if s == m.EventKey {
			return "" // no qrscene_: not from a parametric code
		}
		return s
	case strings.EqualFold(m.Event, EventScan):
		return m.EventKey
	}
	return ""
}

// Parse reads a push body: one <xml> element with text children. A DOCTYPE
// (the door to entity expansion), any other directive, a second root,
// non-XML trailing data or a body over MaxBody is refused. encoding/xml
// never loads external entities and, in strict mode, knows only the five
// predefined ones.
func Parse(body []byte) (Message, error) {
	var m Message
	if len(body) > MaxBody {
		return m, ErrTooLarge
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	root := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return Message{}, fmt.Errorf("%w: a directive (DOCTYPE) is not allowed", ErrMalformed)
		case xml.ProcInst:
			if t.Target != "xml" || root {
				return Message{}, fmt.Errorf("%w: processing instruction %q", ErrMalformed, t.Target)
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return Message{}, fmt.Errorf("%w: text outside the root element", ErrMalformed)
			}
		case xml.StartElement:
			if root || t.Name.Local != "xml" {
				return Message{}, fmt.Errorf("%w: the root must be one <xml> element", ErrMalformed)
			}
			root = true
			if err := d.DecodeElement(&m, &t); err != nil {
				return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		}
	}
	if !root {
		return Message{}, fmt.Errorf("%w: no <xml> element", ErrMalformed)
	}
	return m, nil
}

// cdata writes <name><![CDATA[v]]></name>; a "]]>" inside v is split across
// two sections, as CDATA cannot contain it.
func cdata(b *strings.Builder, name, v string) {
	b.WriteString("<" + name + "><![CDATA[")
	b.WriteString(strings.ReplaceAll(v, "]]>", "]]]]><![CDATA[>"))
	b.WriteString("]]></" + name + ">")
}

// Marshal writes m in WeChat's format (CDATA text, numeric CreateTime).
// Empty fields are left out; Encrypt is not written (see Envelope).
func (m Message) Marshal() []byte {
	var b strings.Builder
	b.WriteString("<xml>")
	for _, f := range []struct{ name, v string }{
		{"ToUserName", m.ToUserName}, {"FromUserName", m.FromUserName},
	} {
		if f.v != "" {
			cdata(&b, f.name, f.v)
		}
	}
	b.WriteString("<CreateTime>" + strconv.FormatInt(m.CreateTime, 10) + "</CreateTime>")
	for _, f := range []struct{ name, v string }{
		{"MsgType", m.MsgType}, {"Event", m.Event}, {"EventKey", m.EventKey}, {"Ticket", m.Ticket},
		{"Content", m.Content}, {"MsgId", m.MsgID},
	} {
		if f.v != "" {
			cdata(&b, f.name, f.v)
		}
	}
	b.WriteString("</xml>")
	return []byte(b.String())
}

// TextReply is the passive reply that sends the user a text message: from
// the official account (the push's ToUserName) to the user.
func TextReply(push Message, content string, now int64) []byte {
	return Message{ToUserName: push.FromUserName, FromUserName: push.ToUserName, CreateTime: now,
		MsgType: "text", Content: content}.Marshal()
}

// Cipher is safe mode's AES-256-CBC with one official account's
// EncodingAESKey and appid.
type Cipher struct {
	block cipher.Block
	key   []byte
	appID string
}

// blockPad is safe mode's PKCS#7 block size: 32, not AES's 16.
const blockPad = 32

// NewCipher returns the cipher of an official account. The key is the 43
// characters of the EncodingAESKey (base64 of 32 bytes without its "=").
func NewCipher(encodingAESKey, appID string) (*Cipher, error) {
	if len(encodingAESKey) != 43 {
		return nil, ErrBadKey
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, ErrBadKey
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrBadKey
	}
	return &Cipher{block: block, key: key, appID: appID}, nil
}

// Encrypt seals msg as safe mode does: random (16 bytes), the length of msg
// as 4 bytes big-endian, msg, the appid; PKCS#7 to 32 bytes; AES-256-CBC
// with the key's first 16 bytes as IV; base64.
func (c *Cipher) Encrypt(random [16]byte, msg []byte) string {
	plain := make([]byte, 0, 16+4+len(msg)+len(c.appID)+blockPad)
	plain = append(plain, random[:]...)
	plain = binary.BigEndian.AppendUint32(plain, uint32(len(msg)))
	plain = append(plain, msg...)
	plain = append(plain, c.appID...)
	pad := blockPad - len(plain)%blockPad
	plain = append(plain, bytes.Repeat([]byte{byte(pad)}, pad)...)
	out := make([]byte, len(plain))
	cipher.NewCBCEncrypter(c.block, c.key[:16]).CryptBlocks(out, plain)
	return base64.StdEncoding.EncodeToString(out)
}

// Decrypt opens an Encrypt text and checks that it was sealed for this
// appid; it returns the message inside.
func (c *Cipher) Decrypt(encrypted string) ([]byte, error) {
	if base64.StdEncoding.DecodedLen(len(encrypted)) > MaxBody {
		return nil, ErrTooLarge
	}
	raw, err := base64.StdEncoding.DecodeString(encrypted)
	if err != nil || len(raw) == 0 || len(raw)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: Encrypt is not base64 of whole AES blocks", ErrMalformed)
	}
	plain := make([]byte, len(raw))
	cipher.NewCBCDecrypter(c.block, c.key[:16]).CryptBlocks(plain, raw)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > blockPad || pad > len(plain) {
		return nil, fmt.Errorf("%w: bad padding", ErrMalformed)
	}
	for _, b := range plain[len(plain)-pad:] {
		if int(b) != pad {
			return nil, fmt.Errorf("%w: bad padding", ErrMalformed)
		}
	}
	plain = plain[:len(plain)-pad]
	if len(plain) < 20 {
		return nil, fmt.Errorf("%w: too short", ErrMalformed)
	}
	n := binary.BigEndian.Uint32(plain[16:20])
	if uint64(n) > uint64(len(plain)-20) {
		return nil, fmt.Errorf("%w: message length past the end", ErrMalformed)
	}
	msg, appID := plain[20:20+n], plain[20+n:]
	if subtle.ConstantTimeCompare(appID, []byte(c.appID)) != 1 {
		return nil, ErrWrongAppID
	}
	return msg, nil
}

// Envelope is safe mode's reply: the encrypted message with its
// msg_signature, timestamp and nonce.
func (c *Cipher) Envelope(token string, random [16]byte, msg []byte, timestamp, nonce string) []byte {
	enc := c.Encrypt(random, msg)
	var b strings.Builder
	b.WriteString("<xml>")
	cdata(&b, "Encrypt", enc)
	cdata(&b, "MsgSignature", Signature(token, timestamp, nonce, enc))
	b.WriteString("<TimeStamp>" + timestamp + "</TimeStamp>")
	cdata(&b, "Nonce", nonce)
	b.WriteString("</xml>")
	return []byte(b.String())
}

// SealPush is a safe-mode push body as WeChat sends it: ToUserName and the
// encrypted message. The caller signs it (msg_signature) with
// Signature(token, timestamp, nonce, encrypt).
func (c *Cipher) SealPush(toUserName string, random [16]byte, msg []byte) (body []byte, encrypt string) {
	encrypt = c.Encrypt(random, msg)
	var b strings.Builder
	b.WriteString("<xml>")
	cdata(&b, "ToUserName", toUserName)
	cdata(&b, "Encrypt", encrypt)
	b.WriteString("</xml>")
	return []byte(b.String()), encrypt
}
