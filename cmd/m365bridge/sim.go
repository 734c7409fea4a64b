package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

// runSim serves the Entra ID + Graph mail simulator until ctx ends. Without
// --seed it serves m365sim.DefaultSeed (the tenant, app and mailboxes the
// sample bridge.yaml names) plus a few demo messages.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim", stderr)
	listen := fs.String("listen", "127.0.0.1:8369", "`host:port` to listen on (port 0 picks a free one)")
	seedPath := fs.String("seed", "", "seed `file` (YAML) with the tenant, app, users, mailboxes and mail; default: the built-in demo seed")
	auto := fs.Bool("auto-approve", false, "approve every sign-in at once, as the login_hint user or the first user with a mailbox")
	noThrottle := fs.String("no-throttle", "", "turn Graph throttling off; the value is the `reason` (throttling is on by default: per app and mailbox 4 concurrent requests, 10,000 per 10 minutes, 150 MB uploaded per 5 minutes)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("sim: unexpected argument %q (use --seed FILE)", fs.Arg(0))}
	}

	var seed *m365sim.Seed
	if *seedPath != "" {
		var err error
		if seed, err = m365sim.LoadSeedFile(*seedPath); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
	} else {
		seed = m365sim.DefaultSeed()
		if v := os.Getenv("M365_CLIENT_SECRET"); v != "" {
			seed.App.ClientSecret = v
		}
		addDemoMail(seed)
	}
	srv, err := m365sim.Listen(*listen, m365sim.Options{AllowHTTPLoopback: true, AutoApprove: *auto, NoThrottle: *noThrottle, Logger: cliLogger(stderr)}, seed)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if host, _, _ := net.SplitHostPort(*listen); !isLoopback(host) {
		fmt.Fprintf(stderr, "warning: the sim listens on %s; its control API (/_sim/) has no authentication\n", *listen)
	}
	printSimBanner(stdout, srv, *auto)

	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	fmt.Fprintln(stdout, "sim stopped")
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// addDemoMail gives the default seed's mailboxes something to walk.
func addDemoMail(seed *m365sim.Seed) {
	for i := range seed.SharedMailboxes {
		if seed.SharedMailboxes[i].Address == "support@contoso.com" {
			seed.SharedMailboxes[i].Mail.Messages = append(seed.SharedMailboxes[i].Mail.Messages,
				m365sim.NewMessage{Subject: "Printer on floor 3 is jammed", From: "Pat Customer <pat@fabrikam.com>",
					Body: "Hi support,\n\nthe printer on floor 3 shows error E-17 again.\n\nPat"},
				m365sim.NewMessage{Subject: "Invoice 2026-117: wrong address", From: "Billing <billing@fabrikam.com>",
					Body: "<p>Please correct the <b>billing address</b> on invoice 2026-117.</p>", HTML: true})
		}
	}
	for i := range seed.Users {
		if seed.Users[i].UPN == "agent@contoso.com" {
			seed.Users[i].Mail.Messages = append(seed.Users[i].Mail.Messages,
				m365sim.NewMessage{Subject: "Welcome to the support team", From: "Sam Sales <sales@contoso.com>",
					Body: "Welcome aboard, Alex!"})
		}
	}
}

// printSimBanner says what the sim serves and how to try it with curl.
func printSimBanner(w io.Writer, srv *m365sim.Server, auto bool) {
	sd := srv.Seeded
	tenant := sd.TenantDomain
	if tenant == "" {
		tenant = sd.TenantID
	}
	redirect := m365sim.DefaultRedirectURI
	if uris := srv.Sim.RedirectURIs(sd.ClientID); len(uris) > 0 {
		redirect = uris[0]
	}
	fmt.Fprintf(w, "m365sim listening on %s\n\n", srv.URL)
	fmt.Fprintf(w, "Tenant:        %s (id %s)\n", tenant, sd.TenantID)
	fmt.Fprintf(w, "Client ID:     %s\n", sd.ClientID)
	if srv.Sim.Throttled() {
		fmt.Fprintln(w, "Throttling:    on (per app and mailbox: 4 concurrent, 10,000 per 10 min, 150 MB uploaded per 5 min)")
	} else {
		fmt.Fprintln(w, "Throttling:    OFF (--no-throttle)")
	}
	fmt.Fprintf(w, "Client secret: %s\n", sd.ClientSecret)
	fmt.Fprintf(w, "Redirect URI:  %s\n", redirect)
	fmt.Fprintf(w, "Users:         %s\n", strings.Join(sd.Users, ", "))
	if len(sd.Mailboxes) > 0 {
		fmt.Fprintf(w, "Shared:        %s\n", strings.Join(sd.Mailboxes, ", "))
	}
	if auto {
		fmt.Fprintln(w, "Sign-ins are approved automatically (--auto-approve).")
	}
	fmt.Fprintf(w, "\nIn bridge.yaml:\n  microsoft:\n    client_id: %s\n    tenant: %s\n    login_url: %s\n    graph_url: %s\n", sd.ClientID, tenant, srv.URL, srv.GraphURL())

	user := "agent@contoso.com"
	if len(sd.Users) > 0 {
		user = sd.Users[0]
	}
	fmt.Fprintf(w, "\nTry it:\n")
	fmt.Fprintf(w, "  # a token without the browser flow (control API)\n")
	fmt.Fprintf(w, "  TOKEN=$(curl -s -X POST %s/_sim/tokens -d '{\"user\":\"%s\"}' | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')\n", srv.URL, user)
	fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $TOKEN\" %s/me/mailFolders\n", srv.GraphURL())
	fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $TOKEN\" '%s/me/mailFolders/inbox/messages?$select=subject,from'\n", srv.GraphURL())
	if len(sd.Mailboxes) > 0 {
		fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $TOKEN\" %s/users/%s/mailFolders/inbox/messages\n", srv.GraphURL(), sd.Mailboxes[0])
	}
	fmt.Fprintf(w, "  # the real flow: authorize (sim_auto=1 skips the page), then redeem the code\n")
	fmt.Fprintf(w, "  curl -si '%s/%s/oauth2/v2.0/authorize?client_id=%s&response_type=code&redirect_uri=%s&scope=offline_access%%20openid%%20Mail.ReadWrite&sim_auto=1' | grep -i ^location\n",
		srv.URL, tenant, sd.ClientID, redirect)
	fmt.Fprintf(w, "  curl -s %s/%s/oauth2/v2.0/token -d grant_type=authorization_code -d client_id=%s --data-urlencode client_secret=%s -d redirect_uri=%s -d code=CODE\n",
		srv.URL, tenant, sd.ClientID, sd.ClientSecret, redirect)
	fmt.Fprintf(w, "  # the control API\n  curl -s %s/_sim/\n\n", srv.URL)
}
