package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// runKeys manages the token-encryption key: `keys rotate` re-encrypts every
// stored token to a new key; `keys generate` prints a new key for
// M365BRIDGE_KEY.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "keys: name a subcommand: rotate [--config FILE] | generate"
	if isHelp(args) {
		printHelp(stderr, "keys", nil)
		return flag.ErrHelp
	}
	if len(args) == 0 {
		return usageError{usage}
	}
	switch args[0] {
	case "generate":
		fs := newFlagSet("keys generate", stderr)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Sprintf("keys generate: unexpected argument %q", fs.Arg(0))}
		}
		fmt.Fprintln(stdout, store.GenerateKey())
		return nil
	case "rotate":
	default:
		return usageError{usage}
	}
	fs := newFlagSet("keys rotate", stderr)
	path := fs.String("config", "bridge.yaml", "the configuration `file`")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("keys rotate: unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	// Rotating the keys of a state directory that does not exist would only
	// create one, with a key nobody asked for.
	db, err := openExistingStore(ctx, cfg.State, "state_dir of "+*path)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := store.RotateKey(ctx, db, cfg.State, os.Getenv, cliLogger(stderr))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Re-encrypted %d rows with key %s (%s).\n", res.Rows, res.NewKeyID, res.Source)
	if res.OldKeyID != "" {
		fmt.Fprintf(stdout, "The old key %s is no longer needed. Back up the new key now.\n", res.OldKeyID)
	}
	return nil
}
