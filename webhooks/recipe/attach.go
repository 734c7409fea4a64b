package recipe

import (
	"fmt"

	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// Attach gives every endpoint of eps whose webhook in cfg has a recipe its
// compiled Recipe (deliver.Endpoint.Recipe), all sharing opts (the ticket
// map, the HTTP client, the clock). The daemon calls it once after
// building the endpoints from cfg and before deliver.New, and again on a
// configuration reload before SetEndpoints.
func Attach(eps []deliver.Endpoint, cfg *config.Config, opts Options) error {
	byName := map[string]config.Webhook{}
	for _, w := range cfg.Webhooks {
		byName[w.Name] = w
	}
	for i := range eps {
		w, ok := byName[eps[i].Name]
		if !ok || w.Recipe == nil {
			continue
		}
		r, err := New(w, opts)
		if err != nil {
			return fmt.Errorf("webhook %s: recipe: %w", w.Name, err)
		}
		eps[i].Recipe = r
	}
	return nil
}
