package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every symmetric Standard Webhooks secret.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may be from now.
const DefaultTolerance = 5 * time.Minute

// Errors Verify returns, wrapped with details; test with errors.Is.
var (
	ErrMissingHeaders   = errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrInvalidTimestamp = errors.New("webhook-timestamp is not a Unix time in seconds")
	ErrInvalidSignature = errors.New("no matching signature")
	ErrTimestampTooOld  = errors.New("webhook-timestamp too old")
	ErrTimestampTooNew  = errors.New("webhook-timestamp too far in the future")
	ErrInvalidSecret    = errors.New("invalid secret")
)

// Secret sizes the spec allows, in bytes after base64 decoding.
const (
	minSecretBytes = 24
	maxSecretBytes = 64
)

// DecodeSecret returns the key bytes of a "whsec_<base64>" secret. The
// prefix may be left out; the key must be 16 to 64 bytes.
func DecodeSecret(secret string) ([]byte, error) {
	b64 := strings.TrimPrefix(strings.TrimSpace(secret), SecretPrefix)
	if b64 == "" {
		return nil, fmt.Errorf("%w: empty (want whsec_ followed by base64)", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 after whsec_ (generate one with `openssl rand -base64 32`)", ErrInvalidSecret)
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return nil, fmt.Errorf("%w: decodes to %d bytes, want %d to %d", ErrInvalidSecret, len(key), minSecretBytes, maxSecretBytes)
	}
	return key, nil
}

// GenerateSecret returns a new random 32-byte secret as whsec_<base64>.
func GenerateSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:]), nil
}

// Sign returns the webhook-signature value "v1,<base64 HMAC-SHA256>" of
// msgID "." unix-seconds(ts) "." body under secret. body must be the exact
// bytes sent.
func Sign(secret string, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := DecodeSecret(secret)
	if err != nil {
		return "", err
	}
	if msgID == "" {
		return "", fmt.Errorf("sign webhook: empty message id")
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, msgID, ts.Unix(), body)), nil
}

// SignAll signs with every secret and joins the signatures with spaces, as
// the header carries them during a secret rotation.
func SignAll(secrets []string, msgID string, ts time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", fmt.Errorf("sign webhook: %w: no secret configured", ErrInvalidSecret)
	}
	sigs := make([]string, 0, len(secrets))
	for i, s := range secrets {
		sig, err := Sign(s, msgID, ts, body)
		if err != nil {
			return "", fmt.Errorf("sign with secret %d: %w", i+1, err)
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

func mac(key []byte, msgID string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msgID))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(unix, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verifier checks signed requests. The zero Tolerance means
// DefaultTolerance; a nil Now means time.Now.
type Verifier struct {
	// Secrets are every secret currently accepted; during a rotation list
	// both the new and the old one.
	Secrets   []string
	Tolerance time.Duration
	Now       func() time.Time
}

// VerifyOption adjusts Verify.
type VerifyOption func(*Verifier)

// WithTolerance sets how far webhook-timestamp may be from now.
func WithTolerance(d time.Duration) VerifyOption { return func(v *Verifier) { v.Tolerance = d } }

// WithNow sets the clock the timestamp is checked against.
func WithNow(now func() time.Time) VerifyOption { return func(v *Verifier) { v.Now = now } }

// Verify checks that h carries a valid Standard Webhooks signature of body
// under one of secrets, with a timestamp inside the tolerance. It returns
// nil or an error wrapping one of the Err* sentinels.
func Verify(h http.Header, body []byte, secrets []string, opts ...VerifyOption) error {
	v := Verifier{Secrets: secrets}
	for _, o := range opts {
		o(&v)
	}
	return v.Verify(h, body)
}

// Verify checks h and body; see the package function Verify.
func (v Verifier) Verify(h http.Header, body []byte) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		var missing []string
		for _, n := range []string{HeaderID, HeaderTimestamp, HeaderSignature} {
			if h.Get(n) == "" {
				missing = append(missing, n)
			}
		}
		return fmt.Errorf("%w: %s absent", ErrMissingHeaders, strings.Join(missing, ", "))
	}
	unix, err := strconv.ParseInt(strings.TrimSpace(tsText), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrInvalidTimestamp, truncate(tsText, 40))
	}
	keys := make([][]byte, 0, len(v.Secrets))
	for i, s := range v.Secrets {
		k, err := DecodeSecret(s)
		if err != nil {
			return fmt.Errorf("secret %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: no secret configured", ErrInvalidSecret)
	}

	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	ts := time.Unix(unix, 0)
	switch age := now().Sub(ts); {
	case age > tol:
		return fmt.Errorf("%w: sent %s ago, tolerance %s", ErrTimestampTooOld, age.Round(time.Second), tol)
	case age < -tol:
		return fmt.Errorf("%w: %s ahead, tolerance %s", ErrTimestampTooNew, (-age).Round(time.Second), tol)
	}

	want := make([][]byte, len(keys))
	for i, k := range keys {
		want[i] = mac(k, id, unix, body)
	}
	for _, sig := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue // other schemes (v1a, future versions) are not ours to check
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		for _, w := range want {
			if hmac.Equal(got, w) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: body, webhook-id or secret differ from what was signed", ErrInvalidSignature)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
