package main

// STUB — replaced by whoever builds this subcommand.

import (
	"context"
	"errors"
	"io"
)

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("verify: not built yet")
}
