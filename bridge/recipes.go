package bridge

import (
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
	"github.com/m365bridge/m365bridge/webhooks/recipe"
)

// webhookEndpoints builds cfg's endpoints (Endpoints) and gives every
// webhook with a recipe its compiled recipe, sharing the store's ticket
// map, the webhooks' HTTP client, the daemon's clock and logger. Start and
// a reload both build their endpoints here, so a reloaded recipe threads
// replies through the same ticket map.
func (d *Daemon) webhookEndpoints(cfg *config.Config) ([]deliver.Endpoint, error) {
	eps, err := Endpoints(cfg)
	if err != nil {
		return nil, err
	}
	if err := recipe.Attach(eps, cfg, d.recipeOptions()); err != nil {
		return nil, err
	}
	return eps, nil
}

// recipeOptions are the options every recipe of the daemon shares.
func (d *Daemon) recipeOptions() recipe.Options {
	return recipe.Options{
		Tickets:    d.db.Tickets(),
		HTTPClient: d.opts.Dispatcher.HTTPClient,
		Logger:     d.log,
		Now:        d.opts.Now,
		UserAgent:  "m365bridge/" + d.opts.Version,
	}
}
