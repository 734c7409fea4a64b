package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestDeliveriesTestRecipe runs `m365bridge deliveries test zammad` against
// the daemon serving the shipped Zammad recipe and the Zammad fake: every
// step's request and answer is printed, the access token never; the
// synthetic mail becomes one ticket (closed with --archive); a recipe the
// helpdesk refuses exits 1 with the refusal shown.
func TestDeliveriesTestRecipe(t *testing.T) {
	rr := newRecipeRig(t, "zammad", 1, 0, 1)
	t.Setenv("KILL_ADMIN_TOKEN", killAdminToken)
	t.Setenv("KILL_CLIENT_SECRET", rr.sim.Seeded.ClientSecret)
	t.Setenv("ZAMMAD_TOKEN", killZammadToken)
	rr.start()
	ctx := context.Background()

	var out, errb bytes.Buffer
	if err := run(ctx, []string{"deliveries", "test", "-config", rr.config, "zammad"}, &out, &errb); err != nil {
		t.Fatalf("deliveries test: %v\n%s%s", err, out.String(), errb.String())
	}
	got := out.String()
	for _, want := range []string{"(recipe,", "step 1: find_self", "> GET " + rr.front.URL + "/api/v1/tickets/search?",
		"> Authorization: Token [redacted]", "step 2: create", "> POST " + rr.front.URL + "/api/v1/tickets", `"customer_id": "guess:m365bridge-test@example.com"`,
		"< HTTP 201", "result:   delivered"} {
		if !strings.Contains(got, want) {
			t.Errorf("the output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, killZammadToken) {
		t.Errorf("the output shows the access token:\n%s", got)
	}
	v := rr.desk.view()
	if len(v.closed) != 1 || v.closed[1] {
		t.Fatalf("the helpdesk has tickets %v, want one open ticket", v.closed)
	}

	out.Reset()
	if err := run(ctx, []string{"deliveries", "test", "-config", rr.config, "--archive", "--from", "old@customer.example", "zammad"}, &out, &errb); err != nil {
		t.Fatalf("deliveries test --archive: %v\n%s%s", err, out.String(), errb.String())
	}
	if v := rr.desk.view(); len(v.closed) != 2 || !v.closed[2] {
		t.Errorf("after --archive the helpdesk has tickets %v, want a second, closed one\n%s", v.closed, out.String())
	}

	// A token the helpdesk refuses: the answer is shown, the exit code is 1.
	t.Setenv("ZAMMAD_TOKEN", "wrong-token")
	rr.env = []string{"ZAMMAD_TOKEN=wrong-token"} // the daemon's environment
	rr.kill()
	rr.start()
	out.Reset()
	errb.Reset()
	err := run(ctx, []string{"deliveries", "test", "-config", rr.config, "zammad"}, &out, &errb)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != 1 {
		t.Fatalf("with a refused token: err %v, want exit 1\n%s", err, out.String())
	}
	if got := out.String(); !strings.Contains(got, "< HTTP 401") || strings.Contains(got, "wrong-token") || !strings.Contains(errb.String(), "did not deliver") {
		t.Errorf("with a refused token the output should show the 401, not the token:\n%s\n%s", got, errb.String())
	}
}
