package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// runCheck validates a configuration file: on success it prints a summary
// and the redirect URI to register in Entra ID; on failure every error, one
// per line, to stderr, and exit status 1.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	path := fs.String("config", "bridge.yaml", "the configuration `file` to check")
	online := fs.Bool("online", false, "also check that public_url reaches this running daemon (the FQDN check)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{code: 2} // the flag set has printed the problem and usage
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("check: unexpected argument %q (use --config FILE)", fs.Arg(0))}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		var errs config.Errors
		if !errors.As(err, &errs) {
			return fmt.Errorf("check config: %w", err)
		}
		for _, e := range errs {
			fmt.Fprintln(stderr, e.Error())
		}
		noun := "errors"
		if len(errs) == 1 {
			noun = "error"
		}
		fmt.Fprintf(stderr, "%s: %d %s\n", *path, len(errs), noun)
		return exitError{code: 1}
	}
	printSummary(stdout, *path, cfg)
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	if *online {
		return checkOnline(ctx, cfg, stdout, stderr)
	}
	return nil
}

// printSummary prints what the configuration will do.
func printSummary(w io.Writer, path string, c *config.Config) {
	fmt.Fprintf(w, "%s is valid.\n\n", path)
	fmt.Fprintf(w, "Redirect URI (Web platform): %s\n", c.RedirectURI())
	fmt.Fprintln(w, "  Register it in Entra ID: App registrations > your app > Authentication > Add a platform > Web.")
	fmt.Fprintln(w)

	fmt.Fprintf(w, "Microsoft: tenant %s, client %s, secret from %s\n", c.MS.Tenant, c.MS.ClientID, c.MS.ClientSecret.Ref)
	if c.MS.LoginURL != config.DefaultLoginURL || c.MS.GraphURL != config.DefaultGraphURL {
		fmt.Fprintf(w, "  login %s, graph %s (not the global cloud)\n", c.MS.LoginURL, c.MS.GraphURL)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Listeners:")
	fmt.Fprintf(tw, "  public\t%s\t%s\n", c.Listen, c.PublicURL)
	admin := "loopback clients only (no token)"
	if !c.Admin.Token.IsZero() {
		admin = "token from " + c.Admin.Token.Ref
	}
	fmt.Fprintf(tw, "  admin\t%s\t%s\n", c.Admin.Listen, admin)
	tw.Flush()
	fmt.Fprintf(w, "State directory: %s\n", c.State)
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Webhooks:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, h := range c.Webhooks {
		n := len(h.AllSecrets())
		secrets := fmt.Sprintf("%d secret", n)
		if n != 1 {
			secrets += "s"
		}
		extra := ""
		if h.Template != nil {
			extra = "\ttemplate " + h.Template.ContentType
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s%s\n", h.Name, deliver.RedactURL(h.URL), secrets, extra)
	}
	tw.Flush()
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Channels:")
	for _, ch := range c.Channels {
		mailbox := "user (the account that signs in)"
		if ch.Mailbox.Type == config.MailboxShared {
			mailbox = "shared " + ch.Mailbox.Address
		}
		folder := ch.Folder
		if strings.Trim(folder, "/") == "" {
			folder = "Inbox"
		}
		archive := ch.Archive.Mode
		switch ch.Archive.Mode {
		case config.ArchiveOn:
			if ch.Archive.Before != nil {
				archive += ", mail before " + ch.Archive.Before.Format(time.RFC3339) + " as " + ch.Archive.State
			}
		case config.ArchiveAuto:
			archive += ", mail present at the first sync as " + ch.Archive.State
		case config.ArchiveOff:
			archive += ", all mail imported as new"
		}
		fmt.Fprintf(w, "  %s -> webhook %s\n", ch.Name, ch.Webhook)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "    mailbox\t%s\n", mailbox)
		fmt.Fprintf(tw, "    folder\t%s\n", folder)
		fmt.Fprintf(tw, "    group\t%s\n", ch.Group)
		fmt.Fprintf(tw, "    after_import\t%s\n", ch.AfterImport)
		fmt.Fprintf(tw, "    archive\t%s\n", archive)
		tw.Flush()
	}
}
