package wxauth

import (
	"testing"

	"github.com/wxlogin/wxlogin/shared/wechat"
)

func TestWebProfile(t *testing.T) {
	p := webProfile(wechat.UserInfo{Nickname: "N", HeadImgURL: "https://h/0", Sex: 2, Province: "P", City: "", Country: "CN"})
	if *p.Nickname != "N" || *p.AvatarURL != "https://h/0" || *p.Gender != 2 || *p.Province != "P" || p.City != nil || *p.Country != "CN" {
		t.Errorf("profile = %+v", p)
	}
	// Since 2021 WeChat sends sex 0 and empty regions: none of it is news.
	p = webProfile(wechat.UserInfo{Nickname: "N"})
	if p.Gender != nil || p.Province != nil || p.City != nil || p.Country != nil || p.AvatarURL != nil {
		t.Errorf("empty answers became values: %+v", p)
	}
}
