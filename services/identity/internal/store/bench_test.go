package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
)

// BenchmarkLoginWechat measures the store's share of a login, run with
// -cpu to vary the concurrency (connections are capped at 20 as in Run).
func BenchmarkLoginWechat(b *testing.B) {
	for _, returning := range []bool{true, false} {
		b.Run(fmt.Sprintf("returning=%v", returning), func(b *testing.B) {
			s, _ := newStore(b)
			const users = 1000
			if returning {
				for i := range users {
					if _, err := s.LoginWechat(context.Background(), store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: fmt.Sprint("o-", i), SessionKey: "k"}); err != nil {
						b.Fatal(err)
					}
				}
			}
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					openid := fmt.Sprint("new-", i)
					if returning {
						openid = fmt.Sprint("o-", i%users)
					}
					if _, err := s.LoginWechat(context.Background(), store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: openid, SessionKey: "k"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
