package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/m365bridge/m365bridge/bridge"
	"github.com/m365bridge/m365bridge/config"
)

// shutdownTimeout bounds a graceful stop; a second signal ends it sooner.
const shutdownTimeout = 15 * time.Second

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	path := fs.String("config", "bridge.yaml", "configuration `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError{code: 1}
	}
	log, err := bridge.NewLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	d := bridge.New(cfg, bridge.Options{Logger: log, Version: version})
	if err := d.Start(ctx); err != nil {
		return err
	}
	runErr := d.Run(ctx)
	log.Info("shutting down; a second interrupt forces exit", "timeout", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := errors.Join(runErr, d.Close(sctx)); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
