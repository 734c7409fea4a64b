package bridge

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/send"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// sendKillChildEnv carries the child's setup (JSON) when the test binary is
// re-executed as the daemon that the parent kills.
const sendKillChildEnv = "M365BRIDGE_SEND_KILL_CHILD"

type sendKillSetup struct {
	ConfigPath string
	Stage      string // the hook stage the child stops at
}

// hookLine is what the child prints when it reached the stage.
const hookLine = "SEND-HOOK "

// Acceptance 4: kill -9 the daemon between accepting a reply and Graph's
// answer, restart: the reply is sent exactly once. Four points: the row
// committed but not answered yet (the helpdesk then retries the same key),
// the attempt committed before any Graph call, the tagged draft built and
// recorded but not sent (the restart must find it in Drafts and send that
// draft), and Graph's answer received but the outcome not stored (the
// restart must find the mail in Sent Items by its extended property and not
// send it again).
func TestSendKillNineBetweenAcceptAndSend(t *testing.T) {
	for _, stage := range []string{"accepted", "before-graph", "draft-complete", "after-graph"} {
		t.Run(stage, func(t *testing.T) {
			rig := newSendRig(t, nil)
			md := rig.imported("kill " + stage)
			rig.stop()

			setup, _ := json.Marshal(sendKillSetup{ConfigPath: rig.path, Stage: stage})
			cmd := exec.Command(os.Args[0], "-test.run=^TestSendKillChild$", "-test.v")
			cmd.Env = append(os.Environ(), sendKillChildEnv+"="+string(setup))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = cmd.Stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killed := false
			defer func() {
				if !killed {
					cmd.Process.Kill()
					cmd.Wait()
				}
			}()
			hooked := make(chan string, 1)
			childOut := &lockedBuffer{}
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					line := sc.Text()
					childOut.Write([]byte(line + "\n"))
					if id, ok := strings.CutPrefix(line, hookLine); ok {
						hooked <- strings.TrimSpace(id)
					}
				}
				io.Copy(io.Discard, out)
			}()
			waitHealthy(t, "http://"+rig.cfg.Listen+"/healthz")

			body := map[string]any{"to": []any{"carol@example.com"}, "text": "Answer.", "reply_to_event_id": md.ID}
			answered := make(chan apiAnswer, 1)
			go func() {
				b, _ := json.Marshal(body)
				req := signed(t, http.MethodPost, "http://"+rig.cfg.Listen+"/v1/channels/support/messages", rig.sendSecret, time.Now(), b)
				req.Header.Set(send.IdempotencyKeyHeader, "article-kill")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					answered <- apiAnswer{err: err.Error()}
					return
				}
				defer resp.Body.Close()
				var a apiAnswer
				a.status = resp.StatusCode
				json.NewDecoder(resp.Body).Decode(&a.send)
				answered <- a
			}()
			var a apiAnswer
			if stage != "accepted" {
				// The worker stops at its stage after the 202 was written.
				a = <-answered
			}
			var id string
			select {
			case id = <-hooked:
			case <-time.After(30 * time.Second):
				t.Fatalf("the child never reached %s\nchild output:\n%s", stage, childOut.String())
			}
			cmd.Process.Kill() // SIGKILL: no shutdown, nothing flushed
			cmd.Wait()
			killed = true
			if stage == "accepted" {
				a = <-answered
			}
			if stage == "accepted" && a.status != 0 {
				t.Errorf("the request was answered %d before the kill; the hook should hold the answer", a.status)
			}
			if stage != "accepted" && (a.status != http.StatusAccepted || a.send.ID != id) {
				t.Errorf("answer before the kill: %+v, want 202 for %s", a, id)
			}
			before := len(rig.sentWithID("support@contoso.com", id))
			if want := map[bool]int{true: 1, false: 0}[stage == "after-graph"]; before != want {
				t.Fatalf("at the kill %d copies were in Sent Items, want %d", before, want)
			}

			rig.start(sendRigOptions())
			if stage == "accepted" {
				// The helpdesk saw no answer and retries with the same key.
				retry := rig.send("support", "article-kill", body)
				if retry.status != http.StatusAccepted || retry.send.ID != id {
					t.Fatalf("retry after the crash: %d %+v, want 202 for the stored %s", retry.status, retry.send, id)
				}
			}
			st := rig.waitFinal("support", id)
			if st.Status != "sent" {
				t.Fatalf("after restart: %+v, want sent", st)
			}
			if n := len(rig.sentWithID("support@contoso.com", id)); n != 1 {
				t.Errorf("%d copies in Sent Items after restart, want exactly 1", n)
			}
			typ, sd := rig.sendEvent(id)
			if typ != webhooks.TypeMailSent || sd.InReplyTo != md.Article.InternetMessageID {
				t.Errorf("outcome event %s %+v", typ, sd)
			}
			if stage == "after-graph" && !strings.Contains(rig.logs.String(), "not sending again") {
				t.Errorf("the restart did not report finding the earlier attempt in Sent Items")
			}
			if stage == "draft-complete" {
				if !strings.Contains(rig.logs.String(), "draft was not sent; sending it") {
					t.Errorf("the restart did not send the earlier attempt's draft")
				}
				if n := len(rig.sim.Sim.Messages("support@contoso.com", "Drafts")); n != 0 {
					t.Errorf("%d drafts left in Drafts, want none", n)
				}
			}
		})
	}
}

// waitHealthy polls url until it answers 200.
func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 200: %v", url, err)
		}
		time.Sleep(10 * time.Millisecond) // pacing: a child process can only be asked over HTTP whether it is up; the deadline is the safety net
	}
}

// TestSendKillChild is the daemon process TestSendKillNineBetweenAcceptAndSend
// kills; it only runs when re-executed with sendKillChildEnv set. At its
// stage it prints the send id and blocks until killed.
func TestSendKillChild(t *testing.T) {
	raw := os.Getenv(sendKillChildEnv)
	if raw == "" {
		t.Skip("run by TestSendKillNineBetweenAcceptAndSend")
	}
	var setup sendKillSetup
	if err := json.Unmarshal([]byte(raw), &setup); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(setup.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	// A guard for a parent that died: never outlive a minute.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := sendRigOptions()
	opts.Poll = time.Hour // only a wake-up from the request starts the worker
	opts.Hook = func(stage, id string) {
		if stage == setup.Stage {
			fmt.Println(hookLine + id)
			<-ctx.Done()
		}
	}
	d := New(cfg, Options{Version: "test", SupervisorPoll: 20 * time.Millisecond, Send: opts})
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d.Run(ctx)
}
