package admin

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// ClusterView is GET /api/cluster: the daemons sharing the database and
// which one owns which channel. On SQLite (one daemon) Shared is false and
// the lists are empty.
type ClusterView struct {
	Shared bool `json:"shared"` // the state is on PostgreSQL, shared by the members
	// ReadAt is when the view was read, by the database's clock: the ages
	// below are taken against it, never against this daemon's clock.
	ReadAt  time.Time       `json:"read_at,omitzero"`
	Members []ClusterMember `json:"members"`
	Leases  []ChannelLease  `json:"leases"`
}

// ClusterMember is one live daemon.
type ClusterMember struct {
	ID        string    `json:"id"`
	Address   string    `json:"address"` // its admin listener, as it reported it
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	// HeartbeatAgeSeconds is ReadAt - Heartbeat.
	HeartbeatAgeSeconds float64 `json:"heartbeat_age_seconds"`
}

// ChannelLease is a channel's owner and its lease's age.
type ChannelLease struct {
	Channel      string    `json:"channel"`
	Owner        string    `json:"owner"`
	FencingToken int64     `json:"fencing_token"`
	Live         bool      `json:"live"` // unexpired; else the channel waits for a new owner
	Acquired     time.Time `json:"acquired"`
	Renewed      time.Time `json:"renewed"`
	Expires      time.Time `json:"expires"`
	// AgeSeconds is how long the owner has held the lease, by the
	// database's clock (renewed - acquired).
	AgeSeconds float64 `json:"age_seconds"`
	// RenewedAgoSeconds is ReadAt - Renewed: how stale the lease is.
	RenewedAgoSeconds float64 `json:"renewed_ago_seconds"`
}

// clusterView reads the cluster view from the database: members whose
// heartbeat is younger than memberTTL, and every channel's lease.
func clusterView(c echo.Context, db *store.DB, memberTTL time.Duration) (ClusterView, error) {
	v := ClusterView{Shared: db.Postgres(), Members: []ClusterMember{}, Leases: []ChannelLease{}}
	if !v.Shared {
		return v, nil
	}
	ctx := c.Request().Context()
	now, err := db.LeaseClock(ctx)
	if err != nil {
		return v, err
	}
	v.ReadAt = now
	ms, err := db.LiveMembers(ctx, memberTTL)
	if err != nil {
		return v, err
	}
	for _, m := range ms {
		v.Members = append(v.Members, ClusterMember{ID: m.ID, Address: m.Address, Started: m.Started, Heartbeat: m.Heartbeat,
			HeartbeatAgeSeconds: now.Sub(m.Heartbeat).Seconds()})
	}
	ls, err := db.Leases(ctx)
	if err != nil {
		return v, err
	}
	for _, l := range ls {
		v.Leases = append(v.Leases, ChannelLease{Channel: l.Channel, Owner: l.Owner, FencingToken: l.Token, Live: l.Live,
			Acquired: l.Acquired, Renewed: l.Renewed, Expires: l.Expires, AgeSeconds: l.Renewed.Sub(l.Acquired).Seconds(),
			RenewedAgoSeconds: now.Sub(l.Renewed).Seconds()})
	}
	return v, nil
}

// apiCluster is GET /api/cluster.
func (a *Console) apiCluster(c echo.Context) error {
	v, err := clusterView(c, a.db, a.config().Store.LeaseTTL)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}
