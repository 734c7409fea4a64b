package config

import (
	"strings"
	"testing"
)

// A channel's send section: enabled when present, a whsec_ secret required,
// every mistake reported at its line.
func TestChannelSendSection(t *testing.T) {
	withSend := func(section string) string {
		return strings.Replace(readTestdata(t, "valid.yaml"), "    group: Support L1\n", "    group: Support L1\n"+section, 1)
	}
	t.Run("absent", func(t *testing.T) {
		c, err := Parse([]byte(readTestdata(t, "valid.yaml")), "bridge.yaml", baseEnv())
		if err != nil {
			t.Fatal(err)
		}
		if c.Channels[0].SendEnabled() || c.Channels[0].Send != nil {
			t.Errorf("sending enabled without a send section: %+v", c.Channels[0].Send)
		}
	})
	t.Run("secret only enables it", func(t *testing.T) {
		env := baseEnv()
		env.vars["SEND_SECRET"] = webhookSecret
		c, err := Parse([]byte(withSend("    send: {secret: '${SEND_SECRET}'}\n")), "bridge.yaml", env)
		if err != nil {
			t.Fatal(err)
		}
		ch := c.Channels[0]
		if !ch.SendEnabled() || len(ch.Send.AllSecrets()) != 1 || ch.Send.AllSecrets()[0].Value() != webhookSecret {
			t.Errorf("send = %+v, want enabled with the secret", ch.Send)
		}
	})
	t.Run("turned off", func(t *testing.T) {
		env := baseEnv()
		env.vars["SEND_SECRET"] = webhookSecret
		c, err := Parse([]byte(withSend("    send: {enabled: false, secrets: [\"${SEND_SECRET}\"]}\n")), "bridge.yaml", env)
		if err != nil {
			t.Fatal(err)
		}
		if c.Channels[0].SendEnabled() {
			t.Error("enabled: false still sends")
		}
	})
	for _, tt := range []struct{ name, section, want string }{
		{"no secret", "    send: {enabled: true}\n", "bridge.yaml:18:"},
		{"not whsec", "    send: {secret: plain-text}\n", "does not start with whsec_"},
		{"unknown key", "    send: {secrit: x}\n", "secrit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(withSend(tt.section)), "bridge.yaml", baseEnv())
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "plain-text") {
				t.Errorf("err = %v, want one mentioning %q (and never the secret)", err, tt.want)
			}
		})
	}
}
