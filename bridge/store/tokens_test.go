package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestAuthRequests(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := b.open(t)
		keys, err := LoadKeyring(t.TempDir(), env(nil), nil) // the key lives outside the database
		if err != nil {
			t.Fatal(err)
		}
		v := NewVault(db, keys)
		now := testEpoch(t)
		db.Now = func() time.Time { return now } // the sweep reads the store's clock: the same one
		mk := func(state string) {
			t.Helper()
			err := v.CreateAuthRequest(ctx, AuthRequest{State: state, Channel: "support", Kind: AuthConnect,
				Verifier: "verifier-" + state, Created: now, Expires: now.Add(10 * time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
		}
		mk("s1")
		mk("s2")

		got, err := v.TakeAuthRequest(ctx, "s1", now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if got.Channel != "support" || got.Kind != AuthConnect || got.Verifier != "verifier-s1" {
			t.Fatalf("took %+v", got)
		}
		tests := []struct {
			name  string
			state string
			at    time.Time
			want  error
		}{
			{"reused", "s1", now.Add(2 * time.Minute), ErrAuthReused},
			{"unknown", "nope", now, ErrAuthUnknown},
			{"expired", "s2", now.Add(10 * time.Minute), ErrAuthExpired},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := v.TakeAuthRequest(ctx, tt.state, tt.at); !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
			})
		}
		st, err := db.ChannelState(ctx, "support")
		if err != nil || st.State != ChannelNeedsConsent {
			t.Fatalf("channel = %+v, %v; want needs_consent", st, err)
		}
	})
}

func TestTokensRedacted(t *testing.T) {
	tok := Tokens{Access: "access-secret", Refresh: "refresh-secret", Expiry: time.Now()}
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%+v %#v", tok, tok), tok.LogValue().String()} {
		if strings.Contains(s, "secret") {
			t.Fatalf("printed tokens: %s", s)
		}
	}
}

func TestChannelStates(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := b.open(t)
		if err := db.EnsureChannels(ctx, []string{"b", "a"}); err != nil {
			t.Fatal(err)
		}
		exp := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			return db.BindChannel(ctx, tx, "a", Binding{MailboxType: "user", MailboxAddress: "u@x",
				Account: Account{TenantID: "t", ObjectID: "o", UPN: "u@x", Name: "U"}, TokenExpiry: exp})
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Tx(ctx, func(tx *sql.Tx) error {
			return db.SetChannelState(ctx, tx, "b", ChannelError, "", "network down", "")
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.Tx(ctx, func(tx *sql.Tx) error { return db.RecordRefresh(ctx, tx, "b", exp) }); err != nil {
			t.Fatal(err)
		}
		all, err := db.ChannelStates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].Name != "a" || all[1].Name != "b" {
			t.Fatalf("channels = %+v", all)
		}
		if a := all[0]; a.State != ChannelActive || a.Account.ObjectID != "o" || !a.TokenExpiry.Equal(exp) {
			t.Fatalf("a = %+v", a)
		}
		if b := all[1]; b.State != ChannelActive || b.Reason != "" {
			t.Fatalf("b after refresh = %+v, want active with reason cleared", b)
		}
		if _, err := db.ChannelState(ctx, "zzz"); !errors.Is(err, ErrNoChannel) {
			t.Fatalf("err = %v, want ErrNoChannel", err)
		}
	})
}
