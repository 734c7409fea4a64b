package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/m365bridge/m365bridge/bridge"
	"github.com/m365bridge/m365bridge/bridge/logging"
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
	if err := cfg.DemoSecretsError(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *path, err)
		return exitError{code: 1}
	}
	log, err := logging.NewLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		log.Warn("configuration warning", "warning", w)
	}
	gcFor(cfg.MemoryBudget, os.Getenv).apply(log)
	d := bridge.New(cfg, bridge.Options{Logger: log, Version: version, ConfigPath: *path})
	if err := d.Start(ctx); err != nil {
		return err
	}
	stopHUP := reloadOnHUP(ctx, d)
	defer stopHUP()
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

// reloadOnHUP re-reads the configuration on every SIGHUP until ctx ends or
// the returned function is called. ReloadFile logs the outcome.
func reloadOnHUP(ctx context.Context, d *bridge.Daemon) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-hup:
				d.ReloadFile(ctx)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
