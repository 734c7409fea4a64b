package main

// STUB — replaced by whoever builds this subcommand.

import (
	"context"
	"errors"
	"io"
)

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("sim: not built yet")
}
