package deliver

import (
	"context"
	"log/slog"
	"slices"
)

// lazyAttrs is a handler that adds attrs to what it logs, as
// base.WithAttrs(attrs) would, but only when a record is logged: a
// delivery's logger (endpoint, event id, seq, later attempt and status) is
// built for every attempt and used only when something goes wrong, and
// slog's text and JSON handlers format attributes in WithAttrs itself.
type lazyAttrs struct {
	base  slog.Handler
	attrs []slog.Attr
}

// withLazy is log.With(args...) with the work deferred to the first
// record.
func withLazy(log *slog.Logger, attrs ...slog.Attr) *slog.Logger {
	return slog.New(lazyAttrs{base: log.Handler(), attrs: attrs})
}

func (h lazyAttrs) Enabled(ctx context.Context, l slog.Level) bool { return h.base.Enabled(ctx, l) }

func (h lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	return h.base.WithAttrs(h.attrs).Handle(ctx, r)
}

// WithAttrs stays lazy: without a group in between, the attributes of
// two WithAttrs calls come out as those of one call with both.
func (h lazyAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return lazyAttrs{base: h.base, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h lazyAttrs) WithGroup(name string) slog.Handler {
	return h.base.WithAttrs(h.attrs).WithGroup(name)
}
