// RT searches: tickets and transactions, paged.

package helpdeskfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// page is REST2's collection format (Collection.pm serialize).
func page(items []map[string]any, r *http.Request) map[string]any {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 {
		per = 20
	}
	per = min(per, 100)
	total := len(items)
	items = items[:min(total, per)]
	return map[string]any{"count": len(items), "total": total, "per_page": per, "page": 1, "pages": (total + per - 1) / per, "items": items}
}

// searchTickets is GET /tickets?query=<TicketSQL>. TicketSQL runs against
// the database: a ticket is found as soon as its create committed. A
// condition on a custom field that does not exist finds nothing. Queries
// the fake does not model answer 400, so a recipe cannot come to rely on
// them.
func (rt *RT) searchTickets(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("query"))
	var found []*RTTicket
	switch {
	case rtCFQuery.MatchString(q):
		m := rtCFQuery.FindStringSubmatch(q)
		want := strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(m[2])
		for _, t := range rt.tickets {
			if contains(t.CFs[m[1]], want) {
				found = append(found, t)
			}
		}
	case rtIDQuery.MatchString(q):
		id, _ := strconv.Atoi(rtIDQuery.FindStringSubmatch(q)[1])
		if t := rt.ticket(id); t != nil {
			found = append(found, t)
		}
	default:
		rtErr(w, http.StatusBadRequest, "fake RT: TicketSQL not modelled: "+q)
		return
	}
	fields := strings.Split(r.URL.Query().Get("fields"), ",")
	items := []map[string]any{}
	for _, t := range found {
		it := map[string]any{"type": "ticket", "id": strconv.Itoa(t.ID), "_url": rt.url("ticket", t.ID)}
		if contains(fields, "CustomFields") {
			it["CustomFields"] = rt.cfList(t.CFs)
		}
		items = append(items, it)
	}
	writeJSON(w, http.StatusOK, page(items, r))
}

// searchTxns is GET /transactions?query=<JSON> (Collection/
// QueryByJSON.pm): conditions on readable columns (ObjectType, ObjectId,
// Type) and "CustomField.{Name}". A condition whose custom field cannot be
// loaded is skipped — the search then returns more, not less — exactly as
// limit_collection does; recipes must check what they find (fields=
// CustomFields expands each item's custom fields, Collection.pm).
func (rt *RT) searchTxns(w http.ResponseWriter, r *http.Request) {
	var conds []struct {
		Field    string `json:"field"`
		Operator string `json:"operator"`
		Value    any    `json:"value"`
	}
	if err := json.Unmarshal([]byte(r.URL.Query().Get("query")), &conds); err != nil {
		rtErr(w, http.StatusBadRequest, "malformed JSON query: "+err.Error())
		return
	}
	cfName := regexp.MustCompile(`CustomField\.\{(.*)\}`)
	items := []map[string]any{}
	fields := strings.Split(r.URL.Query().Get("fields"), ",")
	for _, x := range rt.txns {
		ok := true
		for _, c := range conds {
			if c.Field == "" || c.Value == nil {
				continue
			}
			want := fmt.Sprint(c.Value)
			if c.Operator != "" && c.Operator != "=" {
				rtErr(w, http.StatusBadRequest, "fake RT: operator not modelled: "+c.Operator)
				return
			}
			switch m := cfName.FindStringSubmatch(c.Field); {
			case m != nil:
				if !contains(rt.TxnCFs, m[1]) {
					continue // "Could not load custom field": no limit
				}
				ok = ok && contains(x.CFs[m[1]], want)
			case c.Field == "ObjectId":
				ok = ok && strconv.Itoa(x.TicketID) == want
			case c.Field == "ObjectType":
				ok = ok && want == "RT::Ticket"
			case c.Field == "Type":
				ok = ok && x.Type == want
			default:
				rtErr(w, http.StatusBadRequest, "fake RT: field not modelled: "+c.Field)
				return
			}
		}
		if !ok {
			continue
		}
		it := map[string]any{"type": "transaction", "id": strconv.Itoa(x.ID), "_url": rt.url("transaction", x.ID)}
		if contains(fields, "CustomFields") {
			it["CustomFields"] = rt.cfList(x.CFs)
		}
		if contains(fields, "ObjectId") {
			it["ObjectId"] = strconv.Itoa(x.TicketID)
		}
		items = append(items, it)
	}
	writeJSON(w, http.StatusOK, page(items, r))
}
