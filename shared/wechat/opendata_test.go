package wechat_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/wxlogin/wxlogin/shared/wechat"
)

// The vectors are WeChat's own, from its open-data signature documentation.
const (
	officialRawData    = `{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}`
	officialSessionKey = "HyVFkGl5F5OQWJZZaNzBBg=="
	officialSignature  = "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
)

func TestVerifyRawSignature(t *testing.T) {
	tests := []struct {
		name, rawData, sessionKey, signature string
		want                                 bool
	}{
		{"official vector", officialRawData, officialSessionKey, officialSignature, true},
		{"uppercase hex", officialRawData, officialSessionKey, "75E81CEDA165F4FFA64F4068AF58C64B8F54B88C", true},
		{"tampered rawData", officialRawData[:len(officialRawData)-2] + `1"}`, officialSessionKey, officialSignature, false},
		{"another session key", officialRawData, "tiihtNczf5v6AKRyjwEUhQ==", officialSignature, false},
		{"truncated signature", officialRawData, officialSessionKey, officialSignature[:39], false},
		{"empty signature", officialRawData, officialSessionKey, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wechat.VerifyRawSignature(tt.rawData, tt.sessionKey, tt.signature); got != tt.want {
				t.Errorf("VerifyRawSignature = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckSessionSignature(t *testing.T) {
	tests := []struct{ sessionKey, want string }{
		{"o0q0otL8aEzpcZL/FT9WsQ==", "46e043c5525c2d817c44be603d30837a808a1d930d038f6fdc3e62a201fed128"},
	}
	for _, tt := range tests {
		t.Run(tt.sessionKey, func(t *testing.T) {
			if got := wechat.CheckSessionSignature(tt.sessionKey); got != tt.want {
				t.Errorf("CheckSessionSignature = %s, want %s", got, tt.want)
			}
		})
	}
}

// The official demo vector of WeChat's encryptedData sample code.
const (
	demoAppID      = "wx4f4bc4dec97d474b"
	demoSessionKey = "tiihtNczf5v6AKRyjwEUhQ=="
	demoIV         = "r7BXXKkLb8qrSNn05n0qiA=="
	demoEncrypted  = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+" +
		"3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6" +
		"/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs" +
		"8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns" +
		"/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG" +
		"20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew=="
)

func TestDecryptData(t *testing.T) {
	t.Run("official vector", func(t *testing.T) {
		pt, err := wechat.DecryptData(demoAppID, demoSessionKey, demoEncrypted, demoIV)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			OpenID    string `json:"openId"`
			UnionID   string `json:"unionId"`
			Watermark struct {
				Timestamp int64  `json:"timestamp"`
				AppID     string `json:"appid"`
			} `json:"watermark"`
		}
		if err := json.Unmarshal(pt, &got); err != nil {
			t.Fatal(err)
		}
		if got.OpenID != "oGZUI0egBJY1zhBYw2KhdUfwVJJE" || got.UnionID != "ocMvos6NjeKLIBqg5Mr9QjxrP1FA" ||
			got.Watermark.Timestamp != 1477314187 || got.Watermark.AppID != demoAppID {
			t.Errorf("decrypted %+v", got)
		}
	})

	flipped := []byte(demoEncrypted)
	flipped[10] ^= 'A' ^ 'B'
	tests := []struct{ name, appid, key, data, iv string }{
		{"another app's data", "wx1111111111111111", demoSessionKey, demoEncrypted, demoIV},
		{"wrong session key", demoAppID, "HyVFkGl5F5OQWJZZaNzBBg==", demoEncrypted, demoIV},
		{"wrong iv", demoAppID, demoSessionKey, demoEncrypted, "AAAAAAAAAAAAAAAAAAAAAA=="},
		{"tampered ciphertext", demoAppID, demoSessionKey, string(flipped), demoIV},
		{"truncated ciphertext", demoAppID, demoSessionKey, demoEncrypted[:len(demoEncrypted)-24], demoIV},
		{"not base64", demoAppID, demoSessionKey, "%%%", demoIV},
		{"short key", demoAppID, "AAAA", demoEncrypted, demoIV},
		{"empty", demoAppID, demoSessionKey, "", demoIV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := wechat.DecryptData(tt.appid, tt.key, tt.data, tt.iv); !errors.Is(err, wechat.ErrBadEncryptedData) {
				t.Errorf("err = %v, want ErrBadEncryptedData", err)
			}
		})
	}
}
