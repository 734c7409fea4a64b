package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/send"
	"github.com/m365bridge/m365bridge/webhooks"
)

// sendRig is the daemon rig with sending enabled on both channels (the
// shared support mailbox and the user mailbox sales), a daemon that can be
// stopped and started again on the same state, and helpers that sign send
// requests the way a helpdesk does.
type sendRig struct {
	*daemonRig
	sendSecret string
}

// sendRigOptions are the test's send worker settings: short waits.
func sendRigOptions() send.Options {
	return send.Options{Poll: 50 * time.Millisecond, Schedule: []time.Duration{20 * time.Millisecond},
		MaxAttempts: 3, Recheck: 100 * time.Millisecond}
}

// sendRigChannels: sending on the shared support mailbox, the user mailbox
// sales, and quiet (a shared mailbox nobody connects).
const sendRigChannels = `  - name: support
    mailbox: {type: shared, address: support@contoso.com}
    folder: Inbox/Support
    group: Support L1
    poll_interval: 10s
    archive: {mode: off}
    send: {secret: %[1]s}
  - name: sales
    mailbox: {type: user}
    group: Sales
    poll_interval: 10s
    archive: {mode: off}
    send: {secret: %[1]s}
  - name: quiet
    mailbox: {type: shared, address: quiet@contoso.com}
    poll_interval: 10s
    send: {secret: %[1]s}
`

func newSendRig(t *testing.T, mutate func(seed *m365sim.Seed)) *sendRig {
	t.Helper()
	rig := &sendRig{daemonRig: newRigBase(t, mutate)}
	rig.sendSecret, _ = webhooks.GenerateSecret()
	rig.writeConfig(fmt.Sprintf(sendRigChannels, rig.sendSecret))
	rig.start(sendRigOptions())
	t.Cleanup(func() { rig.stop() })
	return rig
}

// start runs a daemon with these send settings (after stop, a restart).
func (rig *sendRig) start(opts send.Options) {
	rig.sendOpts = opts
	rig.daemonRig.start()
}

// imported connects support as the agent, injects one customer question
// into its folder and waits for its mail.received event.
func (rig *sendRig) imported(subject string) webhooks.MailData {
	t := rig.t
	t.Helper()
	if page := rig.connect("support", "agent@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("support consent page: %.300s", page)
	}
	if _, err := rig.sim.Sim.InjectMessage("support@contoso.com", m365sim.NewMessage{Folder: "Inbox/Support", Subject: subject,
		From: "Carol Customer <carol@example.com>", Body: "Help", MessageID: "<q-" + strings.ReplaceAll(subject, " ", "-") + "@example.com>",
		Headers: []m365sim.MessageHeader{{Name: "References", Value: "<thread-start@example.com>"}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r, ok := rig.d.Runner("support"); ok {
			r.Notify()
		}
		for _, ev := range rig.snapshot() {
			var md webhooks.MailData
			if json.Unmarshal(ev.Data, &md) == nil && ev.Type == webhooks.TypeMailReceived && md.Ticket.Title == subject {
				return md
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail.received for %q\nlogs:\n%s", subject, rig.logs)
		}
		time.Sleep(20 * time.Millisecond) // pacing of the Notify pokes above; the deadline is the safety net
	}
}

// signed builds a request signed with secret at ts.
func signed(t *testing.T, method, url, secret string, ts time.Time, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	id := webhooks.NewID("req")
	sig, err := webhooks.Sign(secret, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(webhooks.HeaderID, id)
	req.Header.Set(webhooks.HeaderTimestamp, fmt.Sprint(ts.Unix()))
	req.Header.Set(webhooks.HeaderSignature, sig)
	req.Header.Set("Content-Type", "application/json")
	return req
}

type apiAnswer struct {
	status int
	header http.Header
	body   []byte
	send   send.Status
	err    string
}

func do(t *testing.T, req *http.Request) apiAnswer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := apiAnswer{status: resp.StatusCode, header: resp.Header, body: b}
	json.Unmarshal(b, &a.send)
	var e struct{ Error string }
	json.Unmarshal(b, &e)
	a.err = e.Error
	return a
}

// send posts a signed send request with the rig's send secret, now.
func (rig *sendRig) send(channel, key string, body any) apiAnswer {
	rig.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		rig.t.Fatal(err)
	}
	req := signed(rig.t, http.MethodPost, "http://"+rig.d.PublicAddr()+"/v1/channels/"+channel+"/messages", rig.sendSecret, time.Now(), b)
	if key != "" {
		req.Header.Set(send.IdempotencyKeyHeader, key)
	}
	return do(rig.t, req)
}

// status reads a send request's status through the signed GET.
func (rig *sendRig) status(channel, id string) apiAnswer {
	rig.t.Helper()
	req := signed(rig.t, http.MethodGet, "http://"+rig.d.PublicAddr()+"/v1/channels/"+channel+"/messages/"+id, rig.sendSecret, time.Now(), nil)
	return do(rig.t, req)
}

// waitFinal polls the status until the request is sent or failed.
func (rig *sendRig) waitFinal(channel, id string) send.Status {
	rig.t.Helper()
	// A safety net only: a send normally ends within a second, a 4 MB
	// upload session under -race in a few; 3 minutes covers a loaded machine.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		a := rig.status(channel, id)
		if a.status != http.StatusOK {
			rig.t.Fatalf("status of %s: %d %s", id, a.status, a.body)
		}
		if a.send.Status == "sent" || a.send.Status == "failed" {
			return a.send
		}
		if time.Now().After(deadline) {
			rig.t.Fatalf("send %s still %s after 3 min\nlogs:\n%s", id, a.send.Status, rig.logs)
		}
		time.Sleep(20 * time.Millisecond) // pacing: the status API is what tells, and it cannot push; the deadline is the safety net
	}
}

// sendEvent waits for the mail.sent or mail.send_failed event of request id.
func (rig *sendRig) sendEvent(id string) (string, webhooks.SendData) {
	rig.t.Helper()
	var typ string
	var sd webhooks.SendData
	rig.waitEventsUntil("the outcome event of send "+id, func(evs map[string]webhooks.Event) bool {
		for _, ev := range evs {
			var d webhooks.SendData
			if (ev.Type == webhooks.TypeMailSent || ev.Type == webhooks.TypeMailSendFailed) && json.Unmarshal(ev.Data, &d) == nil && d.RequestID == id {
				typ, sd = ev.Type, d
				return true
			}
		}
		return false
	})
	return typ, sd
}

// sentWithID lists the mailbox's Sent Items carrying the send id in the
// bridge's extended property (the control API shows the properties;
// Graph shows no internet headers on Sent Items copies).
func (rig *sendRig) sentWithID(mailbox, id string) []m365sim.MessageInfo {
	var out []m365sim.MessageInfo
	for _, mi := range rig.sim.Sim.Messages(mailbox, "Sent Items") {
		if mi.ExtendedProperties[send.PropertyID] == id {
			out = append(out, mi)
		}
	}
	return out
}

func headerOf(mi m365sim.MessageInfo, name string) string {
	for _, h := range mi.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}
