package main

// STUB — replaced by whoever builds this subcommand.

import (
	"context"
	"errors"
	"io"
)

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("replay: not built yet")
}
