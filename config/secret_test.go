package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestResolveSecret(t *testing.T) {
	env := testEnv{
		vars: map[string]string{"TOKEN": "t0k", "EMPTY": ""},
		files: map[string]string{
			"/run/secrets/a":    "from-a\n",
			"/etc/m365/rel":     "rel\r\n",
			"/etc/m365/two-nl":  "x\n\n",
			"/run/secrets/none": "",
		},
	}
	tests := []struct {
		raw, want, ref string
	}{
		{"plain", "plain", "literal"},
		{"${TOKEN}", "t0k", "${TOKEN}"},
		{"Bearer ${TOKEN}", "Bearer t0k", "${TOKEN}"},
		{"${UNSET:-fallback}", "fallback", "${UNSET} (default)"},
		{"${EMPTY:-fallback}", "fallback", "${EMPTY} (default)"},
		{"${EMPTY}", "", "${EMPTY} (empty)"},
		{"${TOKEN:-x}", "t0k", "${TOKEN}"},
		{"${UNSET:-}", "", "${UNSET} (default)"},
		{"a$${b}", "a${b}", "literal"},
		{"a$b", "a$b", "literal"},
		{"file:/run/secrets/a", "from-a", "file:/run/secrets/a"},
		{"file:rel", "rel", "file:/etc/m365/rel"},
		{"file: rel", "rel", "file:/etc/m365/rel"},
		{"file:two-nl", "x\n", "file:/etc/m365/two-nl"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := resolveSecret(tt.raw, "/etc/m365", env)
			if err != nil {
				t.Fatal(err)
			}
			if got.Value() != tt.want || got.Ref != tt.ref {
				t.Errorf("got %q (ref %q), want %q (ref %q)", got.Value(), got.Ref, tt.want, tt.ref)
			}
		})
	}
	bad := []struct{ raw, msg string }{
		{"${UNSET}", "environment variable UNSET is not set"},
		{"pre ${UNSET} post", "environment variable UNSET is not set"},
		{"${TOKEN", "unclosed ${"},
		{"${1BAD}", "malformed ${...} reference"},
		{"${}", "malformed ${...} reference"},
		{"file:", "file: reference without a path"},
		{"file:/nope", "secret file /nope does not exist"},
	}
	for _, tt := range bad {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := resolveSecret(tt.raw, "/etc/m365", env)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %v, want %q", err, tt.msg)
			}
		})
	}
}

// TestSecretsNeverInErrors: whatever is wrong around a secret, neither its
// value nor the literal text of a secret field appears in any error or
// warning, nor in the %v, %+v or %#v form of the Config.
func TestSecretsNeverInErrors(t *testing.T) {
	const value = "Sup3rS3cretValue"
	base := readTestdata(t, "valid.yaml")
	env := baseEnv()
	env.vars["LEAKY"] = value
	env.vars["LEAKY_WHSEC"] = "whsec_" + value
	env.files["conf/secret.txt"] = value + "\n"
	hook := "    secret: ${HELPDESK_WEBHOOK_SECRET}\n"
	tests := []struct{ name, old, new string }{
		{"LiteralClientSecretNextToUnknownKey", "  client_secret: ${M365_CLIENT_SECRET}\n", "  client_secret: " + value + "\n  client_secert: " + value + "\n"},
		{"WebhookSecretNotWhsec", hook, "    secret: " + value + "\n"},
		{"WebhookSecretFromEnvNotWhsec", hook, "    secret: ${LEAKY}\n"},
		{"WebhookSecretBadBase64", hook, "    secret: ${LEAKY_WHSEC}\n"},
		{"WebhookSecretFromFile", hook, "    secret: file:secret.txt\n"},
		{"RotationListBad", hook, hook + "    secrets: [" + value + ", ${LEAKY}]\n"},
		{"SecretAsList", hook, "    secret: [" + value + "]\n"},
		{"SecretAsMapping", hook, "    secret: {" + value + ": x}\n"},
		{"HeaderWithNewline", hook, hook + "    headers: {X-Token: \"" + value + "\\nInjected: 1\"}\n"},
		{"HeaderReservedName", hook, hook + "    headers: {Content-Type: " + value + "}\n"},
		{"MalformedReference", hook, "    secret: \"${" + value + "!}\"\n"},
		{"UnclosedReference", hook, "    secret: \"" + value + "${X\"\n"},
		{"DefaultNotWhsec", hook, "    secret: ${UNSET_VAR:-" + value + "}\n"},
		{"AdminTokenAndBrokenYAML", "public_url:", "admin: {token: " + value + "}\npublic_url: [\n"},
		{"AdminTokenWrongKind", "public_url:", "admin: {token: [" + value + "]}\npublic_url:"},
		{"AdminTokenLiteralWarning", "public_url:", "admin: {token: " + value + "}\npublic_url:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.old) {
				t.Fatalf("%q not in the document", tt.old)
			}
			c, err := Parse([]byte(strings.Replace(base, tt.old, tt.new, 1)), "conf/bridge.yaml", env)
			var text string
			if err != nil {
				text = err.Error()
			} else {
				text = strings.Join(c.Warnings(), "\n") + fmt.Sprintf("%v %+v %#v", c, c, c)
			}
			if text == "" {
				t.Fatal("no error and no warning: the case tests nothing")
			}
			if strings.Contains(text, value) {
				t.Errorf("secret value in the output:\n%s", text)
			}
		})
	}
}
