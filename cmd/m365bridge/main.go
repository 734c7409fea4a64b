// Command m365bridge connects Microsoft 365 mailboxes to a helpdesk: it syncs
// mail through Microsoft Graph and delivers each message as a signed webhook
// event. Run `m365bridge help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command runs one subcommand with the arguments after its name.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// commands is every subcommand, each in its own file; docs (help.go) holds
// their descriptions.
var commands = map[string]command{
	"demo":       runDemo,
	"check":      runCheck,
	"reload":     runReload,
	"serve":      runServe,
	"version":    runVersion,
	"sim":        runSim,
	"receive":    runReceive,
	"verify":     runVerify,
	"deliveries": runDeliveries,
	"replay":     runReplay,
	"auth":       runAuth,
	"channels":   runChannels,
	"keys":       runKeys,
	"sync":       runSync,
	"send":       runSend,
}

// exitError carries an exit code; a command returns it to exit without a
// message of its own (it has already printed one).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError is a mistake in the command line: exit code 2 and a hint.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling so that a
		// second one ends a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	err := profiled(func() error { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) }) // profile.go
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode maps an error to the process exit code, printing it when it has
// not been printed already.
func exitCode(err error, stderr io.Writer) int {
	var ee exitError
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "m365bridge: %s\nRun 'm365bridge help' for usage.\n", ue.msg)
		return 2
	default:
		fmt.Fprintf(stderr, "m365bridge: %s\n", err)
		return 1
	}
}

// run is the whole program behind main, callable from tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stdout)
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	return cmd(ctx, args[1:], stdout, stderr)
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "m365bridge connects Microsoft 365 mailboxes to a helpdesk through signed webhooks.")
	fmt.Fprintln(w, "\nUsage: m365bridge COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, docs[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'm365bridge COMMAND -h' for a command's flags.")
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// whose -h prints docs[name] (help.go) with the flags.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("m365bridge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printHelp(fs.Output(), name, fs) }
	return fs
}
