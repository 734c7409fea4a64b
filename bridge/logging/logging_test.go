package logging

import (
	"bytes"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/config"
)

func TestLoggerRedactsSecrets(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := NewLogger(&buf, "debug", format)
			if err != nil {
				t.Fatal(err)
			}
			log.Info("x",
				"refresh_token", "rt-123", "access_token", "at-456", "client_secret", "cs-789",
				"authorization", "Bearer abc", "code_verifier", "ver-1", "auth_code", "ac-2",
				"body", "dear customer", "secret", config.NewSecret("whsec_zzz"),
				"code", "AADSTS700082", "channel", "support", "status_code", 503)
			out := buf.String()
			for _, leak := range []string{"rt-123", "at-456", "cs-789", "Bearer abc", "ver-1", "ac-2", "dear customer", "whsec_zzz"} {
				if strings.Contains(out, leak) {
					t.Errorf("%s leaked: %s", leak, out)
				}
			}
			for _, keep := range []string{"AADSTS700082", "support", "503"} {
				if !strings.Contains(out, keep) {
					t.Errorf("%s missing: %s", keep, out)
				}
			}
		})
	}
}

func TestNewLoggerRejectsBadSettings(t *testing.T) {
	if _, err := NewLogger(&bytes.Buffer{}, "loud", "text"); err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Errorf("bad level: %v", err)
	}
	if _, err := NewLogger(&bytes.Buffer{}, "info", "xml"); err == nil || !strings.Contains(err.Error(), "text or json") {
		t.Errorf("bad format: %v", err)
	}
}
