package bridge

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// chromiumPath finds the browser for TestBrowserStatusPage. Without one the
// test is skipped on a developer machine and fails in CI (CI set), where
// .ci/install-browser must have installed it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("M365BRIDGE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	fail, msg := missingBrowser(os.Getenv("CI"))
	if fail {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// missingBrowser says what to do without a browser, given $CI.
func missingBrowser(ci string) (fail bool, msg string) {
	if ci != "" && ci != "false" && ci != "0" {
		return true, "CI is set but chromium is not installed: run .ci/install-browser (apt-get install chromium) before the tests"
	}
	return false, "chromium is not installed (/usr/bin/chromium): skipping the headless-browser test of the status page; install it with .ci/install-browser or apt-get install chromium"
}

func TestMissingBrowser(t *testing.T) {
	for _, tt := range []struct {
		ci       string
		wantFail bool
	}{{"", false}, {"false", false}, {"0", false}, {"true", true}, {"1", true}} {
		if fail, msg := missingBrowser(tt.ci); fail != tt.wantFail || !strings.Contains(msg, "chromium") {
			t.Errorf("CI=%q: fail %v (%s), want %v", tt.ci, fail, msg, tt.wantFail)
		}
	}
}

// artifactDir is where screenshots go: $M365BRIDGE_ARTIFACTS, or a
// directory under the system temp dir; never the repository.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("M365BRIDGE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "m365bridge-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 1100),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// screenshot saves the whole page as PNG and logs where.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
	t.Logf("screenshot: %s", path)
}

// TestBrowserStatusPage drives the status page in headless Chromium: sign
// in with the admin token, re-authenticate a channel through the
// simulator's sign-in page back to the bridge's callback, and replay a
// rejected event once the receiver is fixed.
func TestBrowserStatusPage(t *testing.T) {
	ctx := newBrowser(t)
	rig := newDaemonRig(t, nil)
	rig.sim.Sim.SetTokenLifetimes(2*time.Minute, 0) // every Graph call refreshes first
	sr := newSwitchReceiver(rig, 5)
	sr.fail(http.StatusBadRequest, `{"error":"group Sales does not exist"}`)
	injectSales(t, rig, "quote please")
	mustConnect(t, rig, "sales", "sales@contoso.com")
	id := waitDeliveries(t, rig, "state=rejected&channel=sales", 1)[0].EventID
	// An administrator revokes the user's sessions: the next refresh is
	// refused and the channel needs re-authentication.
	if err := rig.sim.Sim.RevokeSignInSessions("sales@contoso.com"); err != nil {
		t.Fatal(err)
	}
	if r, ok := rig.d.Runner("sales"); !ok {
		t.Fatal("sales is not syncing")
	} else if _, err := r.SyncOnce(t.Context()); err == nil {
		t.Fatal("sync after the revocation succeeded")
	}
	admin := "http://" + rig.d.AdminAddr()

	err := chromedp.Do(ctx,
		chromedp.Navigate(admin+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	if err != nil {
		t.Fatalf("open the status page: %v", err)
	}
	screenshot(t, ctx, "sign-in.png")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), "admin-token"),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("channel-sales")),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if title, err := chromedp.Run(ctx, chromedp.Title()); err != nil || title != "Status · m365bridge" {
		t.Errorf("title %q %v", title, err)
	}
	card, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("channel-sales")))
	if !strings.Contains(card, "re-authentication needed") || !strings.Contains(card, "Fix:") {
		t.Errorf("sales card does not say it needs re-authentication and how: %q", card)
	}
	screenshot(t, ctx, "status-page-reauth-needed.png")

	// Re-authenticate: the form posts, the bridge redirects to the sim's
	// sign-in page, the operator picks the account and accepts, and the
	// sim sends the browser to the bridge's callback.
	account := chromedp.CSS(`input[name="sim_user"][value="sales@contoso.com"]`)
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("auth-sales")),
		chromedp.WaitVisible(account),
		chromedp.Click(account),
		chromedp.Click(chromedp.CSS(`button[value="accept"]`)),
		chromedp.WaitVisible(chromedp.CSS(`body.ok h1, body.fail h1`)),
	)
	if err != nil {
		t.Fatalf("re-authenticate: %v", err)
	}
	heading, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if heading != "Channel connected" || !strings.HasPrefix(loc, "http://"+rig.d.PublicAddr()+"/oauth/callback") {
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("after accepting: %q at %s, want the bridge's callback saying Channel connected: %s", heading, loc, body)
	}
	screenshot(t, ctx, "callback-connected.png")
	st, err := rig.d.DB().ChannelState(t.Context(), "sales")
	if err != nil || st.State != store.ChannelActive || st.Account.UPN != "sales@contoso.com" {
		t.Errorf("sales after re-authentication: %+v %v", st, err)
	}

	// Replay the rejected event once the receiver accepts it again.
	sr.fail(0, "")
	replay := chromedp.CSS(`button[id="replay-` + id + `"]`)
	err = chromedp.Do(ctx,
		chromedp.Navigate(admin+"/"),
		chromedp.WaitVisible(replay),
		chromedp.Click(replay),
		chromedp.WaitVisible(chromedp.ID("flash")),
	)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	flashText, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("flash")))
	if !strings.Contains(flashText, id) || !strings.Contains(flashText, "same id") {
		t.Errorf("flash after replay: %q", flashText)
	}
	ev := sr.waitFor(t, id)
	if ev.Type != "mail.received" {
		t.Errorf("replayed event type %q", ev.Type)
	}
	screenshot(t, ctx, "status-page-replayed.png")
}
