package membudget

import (
	"context"
	"errors"
	"testing"
	"time"
)

// safety is the net under waits that a release ends at once.
const safety = 30 * time.Second

func TestClaimClampsToTheBudget(t *testing.T) {
	b := New(100)
	c, err := b.Claim(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Held(); got != 100 {
		t.Fatalf("held %d, want the whole budget (100)", got)
	}
	c.Release()
	c.Release() // twice: a no-op
	if !b.sem.TryAcquire(100) {
		t.Fatal("budget not whole after release")
	}
}

// A light claim passes while a heavy one holds most of the budget; a
// second heavy one waits until the first lets go.
func TestHeavyWaitsLightPasses(t *testing.T) {
	ctx := context.Background()
	b := New(100)
	heavy, err := b.Claim(ctx, 80)
	if err != nil {
		t.Fatal(err)
	}
	light, err := b.Claim(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Claim)
	go func() {
		c, err := b.Claim(ctx, 80)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	select {
	case <-got:
		t.Fatal("a second 80-byte claim got in while 90 of 100 bytes were held")
	case <-time.After(50 * time.Millisecond): // pacing: give it a chance to get in wrongly
	}
	heavy.Release()
	select {
	case c := <-got:
		c.Release()
	case <-time.After(safety):
		t.Fatal("the waiting claim did not get its bytes after the release")
	}
	light.Release()
}

// Two claims that each hold part of the budget and each need more must
// not wait on each other forever: a claim that cannot grow gives its bytes
// back first.
func TestGrowDoesNotDeadlock(t *testing.T) {
	ctx := context.Background()
	b := New(100)
	a, _ := b.Claim(ctx, 50)
	c, _ := b.Claim(ctx, 50)
	done := make(chan error, 2)
	go func() {
		err := a.Grow(ctx, 90)
		a.Release()
		done <- err
	}()
	go func() {
		err := c.Grow(ctx, 90)
		c.Release()
		done <- err
	}()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(safety):
			t.Fatal("two growing claims deadlocked")
		}
	}
}

func TestGrowEndsWithTheContext(t *testing.T) {
	b := New(10)
	hold, _ := b.Claim(context.Background(), 10)
	defer hold.Release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Claim(ctx, 5); !errors.Is(err, context.Canceled) {
		t.Fatalf("claim on an ended context: %v, want context.Canceled", err)
	}
}

func TestNilBudgetIsNoLimit(t *testing.T) {
	var b *Budget
	c, err := b.Claim(context.Background(), 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Grow(context.Background(), 1<<50); err != nil {
		t.Fatal(err)
	}
	c.Release()
	if b.Limit() != 0 {
		t.Fatalf("nil budget limit %d", b.Limit())
	}
}
