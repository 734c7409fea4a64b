package webhooks

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks reference libraries' published vectors.
var vectors = []struct {
	name, secret, id string
	unix             int64
	body, want       string
}{
	{"go/js/python libraries", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
		`{"test": 2432232314}`, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
	{"rust library", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553,
		`{"email":"test@example.com","username":"test_user"}`, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="},
}

func signedHeader(id string, unix int64, sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(unix, 10))
	h.Set(HeaderSignature, sig)
	return h
}

func TestSignVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			got, err := Sign(v.secret, v.id, time.Unix(v.unix, 0), []byte(v.body))
			if err != nil {
				t.Fatal(err)
			}
			if got != v.want {
				t.Errorf("Sign = %s, want %s", got, v.want)
			}
			now := func() time.Time { return time.Unix(v.unix, 0) }
			if err := Verify(signedHeader(v.id, v.unix, v.want), []byte(v.body), []string{v.secret}, WithNow(now)); err != nil {
				t.Errorf("Verify of the published signature: %v", err)
			}
			// The prefix is optional, as in the reference libraries.
			if err := Verify(signedHeader(v.id, v.unix, v.want), []byte(v.body), []string{strings.TrimPrefix(v.secret, SecretPrefix)}, WithNow(now)); err != nil {
				t.Errorf("Verify with the bare base64 secret: %v", err)
			}
		})
	}
}

func TestVerifyFailures(t *testing.T) {
	v := vectors[0]
	body := []byte(v.body)
	at := time.Unix(v.unix, 0)
	now := func() time.Time { return at }
	otherSecret := "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		secrets []string
		now     func() time.Time
		want    error
	}{
		{"tampered body", signedHeader(v.id, v.unix, v.want), []byte(`{"test": 2432232315}`), []string{v.secret}, now, ErrInvalidSignature},
		{"wrong secret", signedHeader(v.id, v.unix, v.want), body, []string{otherSecret}, now, ErrInvalidSignature},
		{"other id", signedHeader("msg_other", v.unix, v.want), body, []string{v.secret}, now, ErrInvalidSignature},
		{"published invalid signature", signedHeader(v.id, v.unix, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="), body, []string{v.secret}, now, ErrInvalidSignature},
		{"partial signature", signedHeader(v.id, v.unix, "v1,"), body, []string{v.secret}, now, ErrInvalidSignature},
		{"other scheme only", signedHeader(v.id, v.unix, strings.Replace(v.want, "v1,", "v2,", 1)), body, []string{v.secret}, now, ErrInvalidSignature},
		{"old timestamp", signedHeader(v.id, v.unix, v.want), body, []string{v.secret}, func() time.Time { return at.Add(5*time.Minute + time.Second) }, ErrTimestampTooOld},
		{"future timestamp", signedHeader(v.id, v.unix, v.want), body, []string{v.secret}, func() time.Time { return at.Add(-5*time.Minute - time.Second) }, ErrTimestampTooNew},
		{"missing id", func() http.Header { h := signedHeader(v.id, v.unix, v.want); h.Del(HeaderID); return h }(), body, []string{v.secret}, now, ErrMissingHeaders},
		{"missing timestamp", func() http.Header { h := signedHeader(v.id, v.unix, v.want); h.Del(HeaderTimestamp); return h }(), body, []string{v.secret}, now, ErrMissingHeaders},
		{"missing signature", func() http.Header { h := signedHeader(v.id, v.unix, v.want); h.Del(HeaderSignature); return h }(), body, []string{v.secret}, now, ErrMissingHeaders},
		{"timestamp not a number", func() http.Header {
			h := signedHeader(v.id, v.unix, v.want)
			h.Set(HeaderTimestamp, "yesterday")
			return h
		}(), body, []string{v.secret}, now, ErrInvalidTimestamp},
		{"secret not base64", signedHeader(v.id, v.unix, v.want), body, []string{"whsec_***"}, now, ErrInvalidSecret},
		{"secret too short", signedHeader(v.id, v.unix, v.want), body, []string{"whsec_c2hvcnQ="}, now, ErrInvalidSecret},
		{"no secret", signedHeader(v.id, v.unix, v.want), body, nil, now, ErrInvalidSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.header, tt.body, tt.secrets, WithNow(tt.now))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrMissingHeaders, ErrInvalidTimestamp, ErrInvalidSignature, ErrTimestampTooOld, ErrTimestampTooNew, ErrInvalidSecret} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("Verify = %v, also matches %v", err, other)
				}
			}
		})
	}
}

func TestVerifyToleranceOption(t *testing.T) {
	v := vectors[0]
	now := func() time.Time { return time.Unix(v.unix, 0).Add(time.Hour) }
	h := signedHeader(v.id, v.unix, v.want)
	if err := Verify(h, []byte(v.body), []string{v.secret}, WithNow(now)); !errors.Is(err, ErrTimestampTooOld) {
		t.Fatalf("default tolerance: got %v, want ErrTimestampTooOld", err)
	}
	if err := Verify(h, []byte(v.body), []string{v.secret}, WithNow(now), WithTolerance(2*time.Hour)); err != nil {
		t.Fatalf("2h tolerance: %v", err)
	}
}

func TestRotation(t *testing.T) {
	oldSecret, newSecret := vectors[0].secret, vectors[1].secret
	id, at, body := "msg_rotation", time.Unix(1700000000, 0), []byte(`{"type":"webhook.test"}`)
	sig, err := SignAll([]string{newSecret, oldSecret}, id, at, body)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(strings.Fields(sig)); got != 2 {
		t.Fatalf("SignAll gave %d signatures, want 2: %q", got, sig)
	}
	h := signedHeader(id, at.Unix(), sig)
	now := WithNow(func() time.Time { return at })
	for _, tc := range []struct {
		name    string
		secrets []string
	}{
		{"receiver still on the old secret", []string{oldSecret}},
		{"receiver already on the new secret", []string{newSecret}},
		{"receiver accepting both", []string{newSecret, oldSecret}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(h, body, tc.secrets, now); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
	// After the overlap the sender drops the old secret: the old receiver fails.
	sigNew, err := SignAll([]string{newSecret}, id, at, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(signedHeader(id, at.Unix(), sigNew), body, []string{oldSecret}, now); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("after rotation, old secret: got %v, want ErrInvalidSignature", err)
	}
}

func TestSignErrors(t *testing.T) {
	if _, err := Sign("whsec_!!", "msg_1", time.Now(), nil); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("bad secret: got %v", err)
	}
	if _, err := SignAll(nil, "msg_1", time.Now(), nil); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("no secrets: got %v", err)
	}
	if _, err := Sign(vectors[0].secret, "", time.Now(), nil); err == nil {
		t.Error("empty id: no error")
	}
}

func TestGenerateSecret(t *testing.T) {
	s, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	key, err := DecodeSecret(s)
	if err != nil {
		t.Fatalf("DecodeSecret(GenerateSecret()): %v", err)
	}
	if len(key) != 32 {
		t.Errorf("key is %d bytes, want 32", len(key))
	}
}

func FuzzVerify(f *testing.F) {
	for _, v := range vectors {
		f.Add(v.id, strconv.FormatInt(v.unix, 10), v.want, []byte(v.body), v.secret)
	}
	f.Add("", "", "", []byte(nil), "")
	f.Add("a.b", "-1", "v1,,, v2 v1,@@", []byte("{}"), "whsec_")
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte, secret string) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		err := Verify(h, body, []string{secret}, WithNow(func() time.Time { return time.Unix(1614265330, 0) }))
		if err == nil {
			// Only a signature Sign itself produces may verify.
			want, serr := Sign(secret, id, time.Unix(mustUnix(t, ts), 0), body)
			if serr != nil {
				t.Fatalf("verified, but Sign fails: %v", serr)
			}
			wantMAC, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(want, "v1,"))
			found := false
			for _, f := range strings.Fields(sig) {
				if v, b64, ok := strings.Cut(f, ","); ok && v == "v1" {
					got, err := base64.StdEncoding.DecodeString(b64)
					found = found || err == nil && bytes.Equal(got, wantMAC)
				}
			}
			if !found {
				t.Fatalf("verified %q, which does not hold Sign's %q", sig, want)
			}
		}
	})
}

func mustUnix(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("verified with unparseable timestamp %q", s)
	}
	return n
}
