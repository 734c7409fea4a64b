package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// doc is what `m365bridge COMMAND -h` prints: the one-line summary (also in
// `m365bridge help`), the synopsis, what it does in more words, and an
// example to copy.
type doc struct {
	summary string
	usage   string // after "Usage: m365bridge "
	details string // optional, may span lines
	example string // one or more command lines
}

// docs is keyed by the flag set's name: a command, or a command and its
// subcommand ("keys rotate"). It holds no functions, so that commands' run
// functions can read it without an initialisation cycle.
var docs = map[string]doc{
	"demo": {
		summary: "run the whole bridge on this machine against the built-in simulator",
		usage:   "demo [--config FILE] [--history N] [--webhook-url URL --webhook-secret whsec_…] [flags]",
		details: "Starts the simulator (Entra ID + Graph), a receiver that verifies every signature and the daemon,\n" +
			"connects every channel, and shows the first sync (history archived), new mail and a live pickup.\n" +
			"With --webhook-url the events go to your receiver instead of the built-in one.\n" +
			"While it runs, `m365bridge reload` re-reads the configuration (the demo's overrides stay).",
		example: "m365bridge demo\n  m365bridge demo --history 10000\n  m365bridge demo --webhook-url http://127.0.0.1:9000/hooks --webhook-secret whsec_…",
	},
	"check": {
		summary: "validate bridge.yaml and print the redirect URI to register",
		usage:   "check [--config FILE] [--online]",
		details: "Validates the configuration (every error at once, with line:col) and prints the redirect URI to\n" +
			"register in Entra ID. Warnings (e.g. the demo's published secrets) go to stderr.",
		example: "m365bridge check --config /etc/m365bridge/bridge.yaml",
	},
	"reload": {
		summary: "make the running daemon re-read bridge.yaml (same as SIGHUP)",
		usage:   "reload [--config FILE]",
		details: "Validates the file first, then asks the daemon on admin.listen to apply it. Listeners, state_dir\n" +
			"and the microsoft section need a restart; the rest is applied without dropping work.",
		example: "m365bridge reload --config bridge.yaml",
	},
	"serve": {
		summary: "run the daemon",
		usage:   "serve [--config FILE]",
		details: "Runs the OAuth callback and health endpoints (listen), the status page, admin API and metrics\n" +
			"(admin.listen), one sync runner per channel and the webhook dispatcher, until SIGINT/SIGTERM.\n" +
			"SIGHUP re-reads the configuration. It refuses to talk to Microsoft with the demo's published secrets.",
		example: "M365_CLIENT_SECRET=… HELPDESK_WEBHOOK_SECRET=whsec_… m365bridge serve --config bridge.yaml",
	},
	"version": {
		summary: "print version and build information",
		usage:   "version",
		example: "m365bridge version",
	},
	"sim": {
		summary: "run the Entra ID + Graph mail simulator",
		usage:   "sim [--listen 127.0.0.1:8369] [--seed FILE] [--auto-approve] [--no-throttle REASON]",
		details: "Serves a simulated Entra ID tenant and Microsoft Graph mail for tests and the demo.\n" +
			"The control API under /_sim/ has no authentication: listen on loopback only.",
		example: "m365bridge sim --listen 127.0.0.1:8369 --auto-approve",
	},
	"receive": {
		summary: "run a development webhook receiver that verifies and prints events",
		usage:   "receive --secret whsec_… [--listen 127.0.0.1:8367] [--path /hooks/m365] [--fail-rate 0] [--json]",
		details: "A development webhook receiver: verifies signatures and prints one line per event.",
		example: "m365bridge receive --listen 127.0.0.1:8367 --secret \"$HELPDESK_WEBHOOK_SECRET\"",
	},
	"verify": {
		summary: "verify a captured webhook request's signature",
		usage:   "verify --secret whsec_… [--tolerance 5m] [--at T] < request",
		details: "Verifies a captured webhook request (headers, blank line, body; the request line is optional).",
		example: "m365bridge verify --secret \"$HELPDESK_WEBHOOK_SECRET\" < captured-request.txt",
	},
	"deliveries": {
		summary: "list outbox rows and dead letters; `deliveries test WEBHOOK` sends a test event",
		usage: "deliveries [--config FILE | --state-dir DIR] [--state S,…] [--channel C] [--endpoint E] [--id ID] [--since T] [--until T] [--json] [--pause E | --resume E]\n" +
			"       m365bridge deliveries test [--config FILE] WEBHOOK",
		details: "Lists webhook outbox rows, oldest first: pending deliveries and dead letters by default.\n" +
			"--pause and --resume change an endpoint's state first (--resume re-enables one disabled by 410 Gone).\n" +
			"With a running daemon (found through --config's admin.listen) it reads through the admin API;\n" +
			"otherwise it reads the state directory, which must exist (it is never created by a read).",
		example: "m365bridge deliveries --state dead,rejected\n  m365bridge deliveries --state-dir /var/lib/m365bridge --channel support --json\n  m365bridge deliveries test helpdesk",
	},
	"deliveries test": {
		summary: "send a webhook.test event to a webhook through the running daemon and show the receiver's answer",
		usage:   "deliveries test [--config FILE] [--from ADDRESS] [--archive] [--auto-submitted] WEBHOOK",
		details: "The running daemon signs a webhook.test event with the webhook's secrets, headers and template and\n" +
			"POSTs it once (not queued, not retried, also while the webhook is paused). The receiver's status and\n" +
			"the start of its answer are printed; exit status 1 unless it answered 2xx.\n" +
			"A webhook with a recipe runs the recipe once against the helpdesk with a synthetic mail (--from, --archive,\n" +
			"--auto-submitted shape it) and prints every step's request and answer, credentials redacted; exit status 1\n" +
			"unless the recipe delivered. The helpdesk keeps the test ticket.",
		example: "m365bridge deliveries test helpdesk\n  m365bridge deliveries test zammad --archive",
	},
	"replay": {
		summary: "re-deliver dead or rejected events, keeping their ids",
		usage:   "replay [--config FILE | --state-dir DIR] (--id ID… | --channel C | --since T [--until T]) [--state dead,rejected] [--endpoint E]",
		details: "Re-delivers dead or rejected events with their original ids and a fresh retry schedule.\n" +
			"With --config and a running daemon, the daemon replays them and delivers at once.",
		example: "m365bridge replay --channel support --since 24h",
	},
	"auth": {
		summary: "print the sign-in URL that connects or re-authenticates a channel",
		usage:   "auth [--config FILE] CHANNEL [--reauth]",
		details: "Prints the Microsoft sign-in URL that connects (or re-authenticates) CHANNEL.\n" +
			"Open it in a browser within ten minutes; the running bridge completes the sign-in.",
		example: "m365bridge auth support",
	},
	"channels": {
		summary: "list channels: sign-in state, account, archive decision, counts; `channels inspect CHANNEL` previews a first sync",
		usage:   "channels [--config FILE | --state-dir DIR] [--json]\n       m365bridge channels inspect [--config FILE] CHANNEL",
		details: "Lists each channel's connection state, the account it uses, its archive decision (mode, cut-off,\n" +
			"reason), message counts and what to do when it needs attention. With a running daemon (found\n" +
			"through --config's admin.listen) it asks the daemon; otherwise it reads the state directory,\n" +
			"which must exist: a read never creates it.",
		example: "m365bridge channels\n  m365bridge channels --state-dir /var/lib/m365bridge --json",
	},
	"channels inspect": {
		summary: "preview what a channel's first sync would do, changing nothing",
		usage:   "channels inspect [--config FILE] [--json] CHANNEL",
		details: "Shows what the channel's first sync would do: the folder's message count, oldest and newest\n" +
			"message, and how many would be imported as archived and as new. Nothing is changed.",
		example: "m365bridge channels inspect support",
	},
	"keys": {
		summary: "rotate the token-encryption key (keys rotate) or generate one (keys generate)",
		usage:   "keys rotate [--config FILE]\n       m365bridge keys generate",
		details: "`keys rotate` re-encrypts every stored token with a new key; `keys generate` prints a new key\n" +
			"for " + store.KeyEnv + ". Run `m365bridge keys SUBCOMMAND -h` for each.",
		example: "m365bridge keys generate\n  m365bridge keys rotate --config bridge.yaml",
	},
	"keys rotate": {
		summary: "re-encrypt every stored token with a new key",
		usage:   "keys rotate [--config FILE]",
		details: "Re-encrypts every stored token with a new key, in one transaction. Stop the bridge first.\n" +
			"With a key file, a new " + store.KeyFileName + " is written (the old one is kept as " + store.OldKeyFileName + " until done).\n" +
			"With " + store.KeyEnv + " set, put the new key there and the previous one in " + store.OldKeyEnv + ".",
		example: "m365bridge keys rotate --config bridge.yaml",
	},
	"keys generate": {
		summary: "print a new token-encryption key",
		usage:   "keys generate",
		details: "Prints a new random key for " + store.KeyEnv + " (or a key file). Nothing is written.",
		example: "export " + store.KeyEnv + "=$(m365bridge keys generate)",
	},
	"sync": {
		summary: "run one sync round for a channel; --dry-run prints the events it would send",
		usage:   "sync [--config FILE] [--dry-run [--json]] CHANNEL",
		details: "Runs one sync round for CHANNEL. With --dry-run, prints the events it would send and changes\n" +
			"nothing (mailbox, ledger, outbox and cursor stay as they are).",
		example: "m365bridge sync support --dry-run",
	},
	"send": {
		summary: "send a message through a channel's mailbox via the running daemon (for testing a channel)",
		usage:   "send CHANNEL --to ADDRESS [--subject S] (--text T | --html H) [flags]",
		details: "Sends a message through the channel's mailbox (the channel needs a send: section). For testing a\n" +
			"channel and for replies; never for bulk or notification mail: Microsoft's sending limits can\n" +
			"suspend the account.",
		example: "m365bridge send support --to alice@example.com --subject 'Test' --text 'Hello'",
	},
}

// printHelp writes name's help: summary, usage, details, flags, example.
func printHelp(w io.Writer, name string, fs *flag.FlagSet) {
	d, ok := docs[name]
	if !ok {
		d = doc{usage: name + " [flags]"}
	}
	if d.summary != "" {
		fmt.Fprintf(w, "m365bridge %s: %s\n\n", name, d.summary)
	}
	fmt.Fprintf(w, "Usage: m365bridge %s\n", d.usage)
	if d.details != "" {
		fmt.Fprintf(w, "\n%s\n", d.details)
	}
	n := 0
	if fs != nil {
		fs.VisitAll(func(*flag.Flag) { n++ })
	}
	if n == 0 {
		fmt.Fprintln(w, "\nFlags: none")
	} else {
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
	if d.example != "" {
		fmt.Fprintf(w, "\nExample:\n  %s\n", strings.TrimSpace(d.example))
	}
}

// isHelp reports whether args ask for help and nothing else.
func isHelp(args []string) bool {
	return len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help")
}
