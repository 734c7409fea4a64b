// Package bridge is the daemon: it wires configuration, the state store, the
// HTTP listeners, the Entra ID token lifecycle, one sync runner per channel
// and the webhook dispatcher, and runs them under one lifecycle.
package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/bridge/web"
	"github.com/m365bridge/m365bridge/config"
)

// Options are what the daemon takes besides its configuration.
type Options struct {
	Logger  *slog.Logger
	Version string
	Now     func() time.Time
}

// Daemon is a running bridge: New, then Start, Run, Close.
type Daemon struct {
	cfg        *config.Config
	log        *slog.Logger
	opts       Options
	instanceID string

	db  *store.DB
	web *web.Server
}

// New prepares a daemon; nothing is opened or bound until Start.
func New(cfg *config.Config, opts Options) *Daemon {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var nonce [12]byte
	rand.Read(nonce[:])
	return &Daemon{cfg: cfg, log: opts.Logger, opts: opts, instanceID: hex.EncodeToString(nonce[:])}
}

// Start opens the store and binds the listeners. An error leaves nothing
// open behind.
func (d *Daemon) Start(ctx context.Context) error {
	db, err := store.Open(ctx, filepath.Join(d.cfg.State, store.FileName))
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	d.db = db
	d.web = web.New(web.Options{
		PublicAddr: d.cfg.Listen,
		AdminAddr:  d.cfg.Admin.Listen,
		AdminToken: d.cfg.Admin.Token.Value(),
		InstanceID: d.instanceID,
		Version:    d.opts.Version,
		Ready:      d.ready,
		Logger:     d.log.With("component", "web"),
	})
	if err := d.web.Start(); err != nil {
		d.db.Close()
		d.db = nil
		return err
	}
	d.log.Info("m365bridge started", "version", d.opts.Version, "state", d.db.Path(),
		"channels", len(d.cfg.Channels), "webhooks", len(d.cfg.Webhooks), "redirect_uri", d.cfg.RedirectURI())
	return nil
}

// ready is /readyz: the store answers and the configuration is loaded.
func (d *Daemon) ready(ctx context.Context) error {
	if d.cfg == nil {
		return errors.New("configuration not loaded")
	}
	return d.db.Ping(ctx)
}

// Run blocks until ctx ends or a component fails.
func (d *Daemon) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-d.web.Err():
		return fmt.Errorf("http listener: %w", err)
	}
}

// Close shuts everything down within ctx's deadline. Safe to call twice.
func (d *Daemon) Close(ctx context.Context) error {
	var errs []error
	if d.web != nil {
		errs = append(errs, d.web.Close(ctx))
	}
	if d.db != nil {
		errs = append(errs, d.db.Close())
		d.db = nil
	}
	return errors.Join(errs...)
}

// InstanceID is the per-process nonce /healthz reports.
func (d *Daemon) InstanceID() string { return d.instanceID }

// PublicAddr and AdminAddr are the bound listener addresses (after Start).
func (d *Daemon) PublicAddr() string { return d.web.PublicAddr() }

// AdminAddr is the bound admin listener address (after Start).
func (d *Daemon) AdminAddr() string { return d.web.AdminAddr() }
