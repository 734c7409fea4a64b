package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"
)

// Profiling for any subcommand (the daemon above all), turned on from the
// environment so that a benchmark or an operator can profile the real
// binary without a flag of its own:
//
//	M365BRIDGE_CPUPROFILE=FILE  a CPU profile of the whole run
//	M365BRIDGE_MEMPROFILE=FILE  a heap profile taken at the live heap's peak
//
// Both are written when the command returns (`serve` returns on SIGTERM or
// SIGINT). Read them with `go tool pprof -top m365bridge FILE`.
const (
	cpuProfileEnv = "M365BRIDGE_CPUPROFILE"
	memProfileEnv = "M365BRIDGE_MEMPROFILE"
)

// heapSampleEvery is how often the live heap is checked for a new peak.
const heapSampleEvery = 500 * time.Millisecond

// profiled runs f with the profiles the environment asks for.
func profiled(f func() error) error {
	cpuPath, memPath := os.Getenv(cpuProfileEnv), os.Getenv(memProfileEnv)
	if cpuPath == "" && memPath == "" {
		return f()
	}
	var stops []func() error
	if cpuPath != "" {
		out, err := os.Create(cpuPath)
		if err != nil {
			return fmt.Errorf("cpu profile: %w (check %s)", err, cpuProfileEnv)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			out.Close()
			return fmt.Errorf("cpu profile: %w", err)
		}
		stops = append(stops, func() error {
			pprof.StopCPUProfile()
			return out.Close()
		})
	}
	if memPath != "" {
		hp, err := startHeapPeak(memPath)
		if err != nil {
			return err
		}
		stops = append(stops, hp.stop)
	}
	err := f()
	for _, stop := range stops {
		if serr := stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("write profile: %w", serr))
		}
	}
	return err
}

// heapPeak keeps, in its file, the heap profile of the moment the live
// heap was highest so far (checked every heapSampleEvery through
// runtime/metrics, which does not stop the world). A profile shows the
// heap as of the last completed GC, so it lags the sample by one cycle.
type heapPeak struct {
	path string
	done chan struct{}
	wg   sync.WaitGroup
	peak uint64
	err  error
}

func startHeapPeak(path string) (*heapPeak, error) {
	// Fail now, not at exit, when the file cannot be written.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return nil, fmt.Errorf("heap profile: %w (check %s)", err, memProfileEnv)
	}
	h := &heapPeak{path: path, done: make(chan struct{})}
	h.wg.Add(1)
	go h.watch()
	return h, nil
}

func (h *heapPeak) watch() {
	defer h.wg.Done()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	tick := time.NewTicker(heapSampleEvery)
	defer tick.Stop()
	for {
		select {
		case <-h.done:
			return
		case <-tick.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			continue
		}
		if v := sample[0].Value.Uint64(); v > h.peak {
			h.peak = v
			h.err = h.write()
		}
	}
}

func (h *heapPeak) write() error {
	tmp := h.path + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(out, 0); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, h.path)
}

// stop ends the watch; a run too short for a sample gets the profile at
// exit.
func (h *heapPeak) stop() error {
	close(h.done)
	h.wg.Wait()
	if h.peak == 0 {
		runtime.GC()
		return h.write()
	}
	return h.err
}
