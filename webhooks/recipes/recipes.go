// Package recipes ships the delivery recipes for helpdesk APIs
// (webhooks/recipe): each file is a webhooks: entry of bridge.yaml to paste
// and adapt (url, token). They are embedded so that tests check them
// against the fakes in webhooks/recipe/helpdeskfake.
package recipes

import "embed"

// Files holds zammad.yaml, zendesk.yaml, rt5.yaml and freshdesk.yaml.
//
//go:embed *.yaml
var Files embed.FS
