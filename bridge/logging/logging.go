// Package logging builds the daemon's structured logger: level and format from
// bridge.yaml, and a redaction rule that keeps secrets out of every line.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// NewLogger builds the daemon's logger from bridge.yaml's log section:
// level debug|info|warn|error, format text|json. Its redaction rule replaces
// the value of any attribute whose key names a secret (token, secret,
// password, authorization, code, verifier, cookie, body), wherever a caller
// forgot; config.Secret values redact themselves.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if level == "" {
		level = "info"
	}
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: redact}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
}

// Redacted is what a redacted value prints as.
const Redacted = "[redacted]"

// sensitiveKeys are attribute-key fragments whose values are never logged.
var sensitiveKeys = []string{"token", "secret", "password", "authorization", "verifier", "cookie", "body", "code"}

// safeKeys contain a sensitive fragment but carry no secret.
// A key that is exactly "code" is an error code (AADSTS, Graph, sync);
// authorization codes are never logged under it.
var safeKeys = map[string]bool{"code": true, "status_code": true, "graph_code": true, "error_code": true, "token_expiry": true, "token_expires": true}

func redact(groups []string, a slog.Attr) slog.Attr {
	key := strings.ToLower(a.Key)
	if safeKeys[key] {
		return a
	}
	for _, frag := range sensitiveKeys {
		if strings.Contains(key, frag) {
			if a.Value.Kind() == slog.KindString && a.Value.String() == "" {
				return a
			}
			return slog.String(a.Key, Redacted)
		}
	}
	return a
}
