package store_test

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// -find-collision makes collidingOpenIDs search for a new pair (about 30 s
// of CPU) instead of using the one found once, and print it.
var findCollision = flag.Bool("find-collision", false, "search for two openids whose generated usernames collide")

// foundCollision are two openids of mpApp whose 12-digit generated
// usernames are equal, found by go test -run Colliding -find-collision.
var foundCollision = [2]string{"oCollidecbff61762f2e", "oCollidee81367ff5cde"}

// collidingOpenIDs returns two different openids whose 12-digit generated
// usernames under mpApp are equal, checked with the production function.
func collidingOpenIDs(t *testing.T) [2]string {
	t.Helper()
	pair := foundCollision
	if *findCollision {
		pair = searchCollision()
		fmt.Printf("foundCollision = [2]string{%q, %q}\n", pair[0], pair[1])
	}
	a, b := store.GeneratedUsername(mpApp, pair[0], 12), store.GeneratedUsername(mpApp, pair[1], 12)
	if pair[0] == pair[1] || a != b {
		t.Fatalf("openids %q and %q give %s and %s: not a collision", pair[0], pair[1], a, b)
	}
	return pair
}

// searchCollision is Brent's cycle finding on name → the name of the openid
// made of that name's digits: about 2^24 hashes and no memory. Where the
// walk enters its cycle, two different openids give one name.
func searchCollision() [2]string {
	openid := func(name string) string { return "oCollide" + name[len("wx_"):] }
	step := func(name string) string { return store.GeneratedUsername(mpApp, openid(name), 12) }
	for seed := 0; ; seed++ {
		start := fmt.Sprintf("wx_%012x", seed)
		power, lam := 1, 1 // lam: the cycle's length
		tortoise, hare := start, step(start)
		for tortoise != hare {
			if power == lam {
				tortoise, power, lam = hare, power*2, 0
			}
			hare = step(hare)
			lam++
		}
		a, b := start, start
		for range lam {
			b = step(b)
		}
		if a == b {
			continue // the start is on the cycle: no tail, no collision
		}
		for step(a) != step(b) {
			a, b = step(a), step(b)
		}
		return [2]string{openid(a), openid(b)}
	}
}

// Two people whose generated names collide get two users: the second a
// longer name, never the first one's account.
func TestLoginWechatCollidingNamesAreTwoUsers(t *testing.T) {
	pair := collidingOpenIDs(t)
	ctx := context.Background()
	login := func(t *testing.T, s *store.Store, openid, unionid string) store.LoginResult {
		t.Helper()
		res, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: openid, UnionID: unionid,
			SessionKey: "sk-" + openid, Profile: &identity.Profile{Nickname: ptr(openid)}})
		if err != nil {
			t.Fatalf("login %s: %v", openid, err)
		}
		return res
	}
	for _, tc := range []struct {
		name          string
		unionid       string // of the second person
		disableFirst  bool
		wantSecondLen int
	}{
		{"without unionid", "", false, 20},
		// The unionid path meets the name as a unique violation instead.
		{"second with unionid", "u-second", false, 20},
		// The first one's state is not the second one's answer.
		{"first disabled", "", true, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, db := newStore(t)
			first := login(t, s, pair[0], "")
			if first.User.Username != store.GeneratedUsername(mpApp, pair[0], 12) || !first.IsNewUser {
				t.Fatalf("first = %+v", first)
			}
			if tc.disableFirst {
				if _, err := s.SetDisabled(ctx, "", first.User.ID, true); err != nil {
					t.Fatal(err)
				}
			}
			second := login(t, s, pair[1], tc.unionid)
			if second.User.ID == first.User.ID || !second.IsNewUser ||
				second.User.Username != store.GeneratedUsername(mpApp, pair[1], tc.wantSecondLen) {
				t.Fatalf("second = %+v; want a new user of its own, not %s", second, first.User.ID)
			}
			if got := login(t, s, pair[1], tc.unionid); got.User.ID != second.User.ID || got.IsNewUser {
				t.Errorf("second again = %+v, want user %s", got, second.User.ID)
			}
			if !tc.disableFirst {
				if got := login(t, s, pair[0], ""); got.User.ID != first.User.ID || got.IsNewUser {
					t.Errorf("first again = %+v, want user %s", got, first.User.ID)
				}
			}
			checkTwoPeople(t, db, first.User.ID, second.User.ID, pair)
		})
	}
}

// Concurrent first logins of both people (several of each at once) end in
// two users, each with its own identity and one user.created.
func TestLoginWechatCollidingNamesConcurrent(t *testing.T) {
	pair := collidingOpenIDs(t)
	for round := range 5 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			s, db := newStore(t)
			const each = 4
			results := make([]store.LoginResult, 2*each)
			errs := make([]error, 2*each)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range 2 * each {
				wg.Go(func() {
					<-start
					results[i], errs[i] = s.LoginWechat(context.Background(), store.WechatLogin{
						Kind: api.KindMiniProgram, AppID: mpApp, OpenID: pair[i%2], SessionKey: fmt.Sprint("sk-", i)})
				})
			}
			close(start)
			wg.Wait()
			ids := [2]string{}
			newUsers := [2]int{}
			for i := range 2 * each {
				if errs[i] != nil {
					t.Fatalf("login %d: %v", i, errs[i])
				}
				p := i % 2
				if ids[p] == "" {
					ids[p] = results[i].User.ID
				} else if results[i].User.ID != ids[p] {
					t.Errorf("openid %s logged in to %s and %s", pair[p], ids[p], results[i].User.ID)
				}
				if results[i].IsNewUser {
					newUsers[p]++
				}
			}
			if newUsers != [2]int{1, 1} {
				t.Errorf("is_new_user seen %v times per person, want once each", newUsers)
			}
			if ids[0] == ids[1] {
				t.Fatalf("both people logged in to user %s", ids[0])
			}
			checkTwoPeople(t, db, ids[0], ids[1], pair)
		})
	}
}

// checkTwoPeople: users a and b exist, each holds exactly its own identity,
// and each has exactly one user.created.
func checkTwoPeople(t *testing.T, db *sqlx.DB, a, b string, pair [2]string) {
	t.Helper()
	for i, id := range []string{a, b} {
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM identities WHERE user_id = $1 AND openid = $2`, id, pair[i]); err != nil || n != 1 {
			t.Errorf("user %s holds %d identities of %s (%v), want 1", id, n, pair[i], err)
		}
		if err := db.Get(&n, `SELECT count(*) FROM identities WHERE user_id = $1`, id); err != nil || n != 1 {
			t.Errorf("user %s holds %d identities (%v), want 1", id, n, err)
		}
		if err := db.Get(&n, `SELECT count(*) FROM outbox WHERE subject = $1 AND payload->'user'->>'id' = $2`,
			identity.SubjectUserCreated, id); err != nil || n != 1 {
			t.Errorf("user %s: %d user.created (%v), want 1", id, n, err)
		}
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM users`); err != nil || n != 2 {
		t.Errorf("%d users (%v), want 2", n, err)
	}
}
