package deliver

import (
	"context"
	"errors"
	"time"
)

// State is an outbox row's delivery state.
type State string

// Row states. pending rows are (re)tried; the others are final until a
// replay puts dead or rejected rows back to pending.
const (
	StatePending   State = "pending"
	StateDelivered State = "delivered" // the receiver answered 2xx
	StateDead      State = "dead"      // attempts or age exhausted
	StateRejected  State = "rejected"  // the receiver answered a permanent 4xx, or the body could not be rendered
)

// Row is one event queued for one endpoint.
type Row struct {
	Seq      int64 // enqueue order
	EventID  string
	Endpoint string
	Channel  string
	Type     string
	Body     []byte // the native event JSON, exactly as signed when no template applies
	// BodySize is len(Body) where the queue read the size without the body
	// (DueMeta); the dispatcher claims it from its memory budget.
	BodySize int64
	State    State
	// Attempts made so far, counted before each POST.
	Attempts      int
	NextAttemptAt time.Time
	CreatedAt     time.Time
	// ReplayedAt is the last replay, zero if never; MaxAge counts from it.
	ReplayedAt    time.Time
	LastAttemptAt time.Time
	LastStatus    int    // HTTP status of the last attempt, 0 for a network error
	LastError     string // a capped excerpt of the last response or error
	DeliveredAt   time.Time
}

// AgeBase is the time MaxAge is measured from: the enqueue or the last replay.
func (r Row) AgeBase() time.Time {
	if r.ReplayedAt.After(r.CreatedAt) {
		return r.ReplayedAt
	}
	return r.CreatedAt
}

// EndpointState is whether an endpoint receives deliveries.
type EndpointState string

// Endpoint states.
const (
	EndpointActive   EndpointState = "active"
	EndpointPaused   EndpointState = "paused"   // by an operator
	EndpointDisabled EndpointState = "disabled" // by a 410 Gone from the receiver
)

// EndpointStatus is an endpoint's persisted state.
type EndpointStatus struct {
	State  EndpointState
	Reason string
	Since  time.Time
}

// Filter selects rows for List and Replay. Zero fields match everything.
type Filter struct {
	IDs      []string
	States   []State
	Endpoint string
	Channel  string
	// Since and Until bound CreatedAt: Since <= CreatedAt < Until.
	Since, Until time.Time
	// Limit caps List (0: no limit); rows come in Seq order.
	Limit int
	// WithBody makes List fill Row.Body.
	WithBody bool
}

// ErrNotPending is returned by MarkAttempt when the row is no longer
// pending (delivered or finished elsewhere); the dispatcher then skips it.
var ErrNotPending = errors.New("outbox row is not pending")

// Queue is the durable outbox the Dispatcher works over. Every method
// commits before it returns; implementations must be safe for concurrent
// use. bridge/store implements it on SQLite.
type Queue interface {
	// DueMeta returns up to limit pending rows of endpoint with
	// NextAttemptAt <= now, in Seq order, leaving out the rows in skip (in
	// flight). It reads no body: Row.Body is nil and Row.BodySize is the
	// body's size. When ordered, only the oldest pending row of each
	// channel is a candidate, so a channel's events arrive in order.
	DueMeta(ctx context.Context, endpoint string, now time.Time, limit int, ordered bool, skip []int64) ([]Row, error)
	// Body returns the event JSON of row seq, once per attempt; an error
	// wrapping ErrNotPending when the row is gone.
	Body(ctx context.Context, seq int64) ([]byte, error)
	// NextDue is the earliest NextAttemptAt among the rows Due could return
	// later; ok is false when endpoint has no pending rows.
	NextDue(ctx context.Context, endpoint string, ordered bool) (next time.Time, ok bool, err error)
	// MarkAttempt records attempt number attempt starting at at and the time
	// of the next attempt should this one's outcome be lost (a crash). It is
	// committed before the POST. ErrNotPending if the row is not pending.
	MarkAttempt(ctx context.Context, seq int64, attempt int, at, next time.Time) error
	// MarkDelivered makes the row delivered and, in the same transaction,
	// runs the implementation's acknowledgement hooks.
	MarkDelivered(ctx context.Context, seq int64, status int, at time.Time) error
	// MarkFailed records a failed attempt that will be retried at next.
	MarkFailed(ctx context.Context, seq int64, status int, excerpt string, next time.Time) error
	// MarkDead ends retrying: attempts or age are exhausted.
	MarkDead(ctx context.Context, seq int64, status int, excerpt string) error
	// MarkRejected ends retrying: the receiver refused the event for good.
	MarkRejected(ctx context.Context, seq int64, status int, excerpt string) error
	// List returns rows matching f.
	List(ctx context.Context, f Filter) ([]Row, error)
	// Replay makes matching dead or rejected rows (f.States, default both)
	// pending again with zero attempts, due at now, keeping their event ids.
	// It returns how many rows changed.
	Replay(ctx context.Context, f Filter, now time.Time) (int, error)
	// Retire deletes endpoint's delivered rows delivered before before.
	Retire(ctx context.Context, endpoint string, before time.Time) (int, error)
	// Endpoint returns endpoint's persisted state (active when unknown).
	Endpoint(ctx context.Context, endpoint string) (EndpointStatus, error)
	// SetEndpoint persists endpoint's state.
	SetEndpoint(ctx context.Context, endpoint string, state EndpointState, reason string, at time.Time) error
}
