package deliver

import (
	"bytes"
	"log/slog"
	"regexp"
	"testing"
)

// TestLazyAttrsLogsAsWith: a delivery's lazy logger writes the lines
// Logger.With writes, for text and JSON, with a second With, a group, and
// a level that is off (nothing written either way).
func TestLazyAttrsLogsAsWith(t *testing.T) {
	timeRE := regexp.MustCompile(`time=\S+|"time":"[^"]*"`) // a line's time
	for _, mk := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler {
			return slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo})
		},
		func(b *bytes.Buffer) slog.Handler {
			return slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo})
		},
	} {
		var got, want bytes.Buffer
		logs := func(log *slog.Logger) {
			log.Debug("off")
			log.Warn("first", "k", 1)
			log = log.With("attempt", 2, "status", 500)
			log.Error("second", "err", "boom")
			log.WithGroup("g").With("in", "group").Info("third", "x", true)
		}
		base := slog.New(mk(&want)).With("component", "dispatcher")
		logs(base.With("endpoint", "hd", "event_id", "evt_1", "seq", int64(7)))
		lazyBase := slog.New(mk(&got)).With("component", "dispatcher")
		logs(withLazy(lazyBase, slog.String("endpoint", "hd"), slog.String("event_id", "evt_1"), slog.Int64("seq", 7)))
		strip := func(b []byte) string { return string(timeRE.ReplaceAll(b, []byte("time=T"))) }
		if strip(got.Bytes()) != strip(want.Bytes()) {
			t.Errorf("lazy logger wrote\n%s\nwant\n%s", strip(got.Bytes()), strip(want.Bytes()))
		}
	}
}
