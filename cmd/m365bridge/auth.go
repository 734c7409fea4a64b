package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// runAuth creates a pending authorization for a channel and prints the URL
// to open. The running daemon's /oauth/callback completes it: both share the
// state directory's database.
func runAuth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("auth", stderr)
	path := fs.String("config", "bridge.yaml", "the configuration `file`")
	reauth := fs.Bool("reauth", false, "re-authenticate a channel that was connected before")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"auth: name exactly one CHANNEL, e.g. m365bridge auth support"}
	}
	channel := pos[0]
	st, err := openAuthState(ctx, *path, stderr)
	if err != nil {
		return err
	}
	defer st.Close()

	kind := store.AuthConnect
	if *reauth {
		kind = store.AuthReauth
	}
	url, err := st.manager.StartAuth(ctx, channel, kind)
	if errors.Is(err, entra.ErrUnknownChannel) {
		return usageError{fmt.Sprintf("auth: %q is not a channel in %s", channel, *path)}
	}
	if err != nil {
		return err
	}
	if cur, err := st.db.ChannelState(ctx, channel); err == nil && cur.State == store.ChannelActive && !*reauth {
		fmt.Fprintf(stderr, "note: channel %s is already connected as %s; finishing this sign-in replaces its tokens.\n", channel, cur.Account.UPN)
	}
	fmt.Fprintf(stdout, "Open this URL in a browser within 10 minutes and sign in")
	if mb := st.cfg.Channels; mb != nil {
		for _, ch := range mb {
			if ch.Name == channel && ch.Mailbox.Type == config.MailboxShared {
				fmt.Fprintf(stdout, " as a user with Full Access to %s", ch.Mailbox.Address)
			}
		}
	}
	fmt.Fprintf(stdout, ":\n\n%s\n\nThe bridge must be running and reachable at %s.\n", url, st.cfg.RedirectURI())
	return nil
}

// parseInterspersed parses flags that may come before or after positional
// arguments (flag stops at the first non-flag) and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// authState is what the auth, channels and keys commands open: the
// configuration, the database and the token vault.
type authState struct {
	cfg     *config.Config
	db      *store.DB
	vault   *store.Vault
	manager *entra.Manager
}

func (s *authState) Close() error { return s.db.Close() }

func cliLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("load config (run `m365bridge check --config %s` for details): %w", path, err)
	}
	return cfg, nil
}

func openAuthState(ctx context.Context, path string, stderr io.Writer) (*authState, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	log := cliLogger(stderr)
	keys, err := store.LoadKeyring(cfg.State, os.Getenv, log)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, filepath.Join(cfg.State, store.FileName))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(cfg.Channels))
	for _, ch := range cfg.Channels {
		names = append(names, ch.Name)
	}
	if err := db.EnsureChannels(ctx, names); err != nil {
		db.Close()
		return nil, err
	}
	v := store.NewVault(db, keys)
	m := entra.FromConfig(cfg, v, &http.Client{Timeout: 30 * time.Second})
	m.Log = log
	return &authState{cfg: cfg, db: db, vault: v, manager: m}, nil
}
