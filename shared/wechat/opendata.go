package wechat

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
)

// VerifyRawSignature checks the signature a mini-program sends with rawData
// (wx.getUserInfo and friends): lowercase hex sha1(rawData + sessionKey). It
// proves the data came from WeChat for this session; compare in constant time
// since the signature is attacker-supplied.
func VerifyRawSignature(rawData, sessionKey, signature string) bool {
	sum := sha1.Sum([]byte(rawData + sessionKey))
	want := hex.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(signature))) == 1
}

// CheckSessionSignature is the signature /wxa/checksession expects with
// sig_method=hmac_sha256: hex HMAC-SHA256 of the empty message, keyed by the
// session_key string itself (not its base64 decoding).
func CheckSessionSignature(sessionKey string) string {
	m := hmac.New(sha256.New, []byte(sessionKey))
	return hex.EncodeToString(m.Sum(nil))
}

// ErrBadEncryptedData is any failure to open encryptedData: bad base64, key or
// iv, padding, JSON, or a watermark of another app. One error for all of
// them, so callers cannot become a padding oracle.
var ErrBadEncryptedData = errors.New("wechat: encrypted data invalid")

// DecryptData opens the legacy encryptedData of a mini-program (user info,
// phone number): AES-128-CBC with PKCS#7 padding, key and iv base64. It
// returns the plaintext JSON only if its watermark.appid is appid, so data
// encrypted for another app is refused.
func DecryptData(appid, sessionKey, encryptedData, iv string) ([]byte, error) {
	key, err1 := base64.StdEncoding.DecodeString(sessionKey)
	ivb, err2 := base64.StdEncoding.DecodeString(iv)
	ct, err3 := base64.StdEncoding.DecodeString(encryptedData)
	if err1 != nil || err2 != nil || err3 != nil || len(key) != 16 || len(ivb) != aes.BlockSize ||
		len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, ErrBadEncryptedData
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrBadEncryptedData
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, ivb).CryptBlocks(pt, ct)
	n := int(pt[len(pt)-1])
	if n == 0 || n > aes.BlockSize || n > len(pt) {
		return nil, ErrBadEncryptedData
	}
	for _, b := range pt[len(pt)-n:] {
		if int(b) != n {
			return nil, ErrBadEncryptedData
		}
	}
	pt = pt[:len(pt)-n]
	var w struct {
		Watermark struct {
			AppID string `json:"appid"`
		} `json:"watermark"`
	}
	if err := json.Unmarshal(pt, &w); err != nil || w.Watermark.AppID != appid {
		return nil, ErrBadEncryptedData
	}
	return pt, nil
}
