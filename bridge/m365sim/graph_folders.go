package m365sim

// mailFolders endpoints (B.2): list root children and child folders, get,
// create, rename, delete.

import (
	"net/http"
	"strings"
)

func folderNotFound(w http.ResponseWriter, r *http.Request) {
	writeGraphError(w, r, http.StatusNotFound, "ErrorFolderNotFound", msgFolderNF)
}

// handleFolderList answers GET /mailFolders (root children) and
// GET /mailFolders/{fid}/childFolders.
func (s *Sim) handleFolderList(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	lq, gerr := parseListQuery(r.URL.Query(), true)
	if gerr != nil {
		writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
		return
	}
	var nameFilter *filterClause
	for i, f := range lq.filter {
		if f.prop != "displayname" {
			writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid filter clause: mailFolders support only displayName eq '…'.")
			return
		}
		nameFilter = &lq.filter[i]
	}
	hidden := strings.EqualFold(r.URL.Query().Get("includeHiddenFolders"), "true")
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := c.d.root()
	ctxPath := "mailFolders"
	if fid := r.PathValue("fid"); fid != "" {
		if parent = c.d.folderByRef(fid); parent == nil {
			folderNotFound(w, r)
			return
		}
		ctxPath = "mailFolders('" + parent.id + "')/childFolders"
	}
	var list []*folder
	for _, f := range c.d.children(parent.id, hidden) {
		if nameFilter == nil || strings.EqualFold(f.name, nameFilter.str) == (nameFilter.op == "eq") {
			list = append(list, f)
		}
	}
	out := jobj{{"@odata.context", c.base + "/$metadata#users('" + c.mb.ID + "')/" + ctxPath}}
	if lq.count {
		out = append(out, jkv{"@odata.count", len(list)})
	}
	page := []any{}
	for i := lq.skip; i < len(list) && i < lq.skip+lq.top; i++ {
		page = append(page, c.folderJSON(list[i], lq.selectFields))
	}
	out = append(out, jkv{"value", page})
	if next := nextLink(r, lq.skip, lq.top, len(list)); next != "" {
		out = append(out, jkv{"@odata.nextLink", next})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) handleFolderGet(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	var fields []string
	if v := r.URL.Query().Get("$select"); v != "" {
		var gerr *graphError
		if fields, gerr = parseSelect(v, true); gerr != nil {
			writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := c.d.folderByRef(r.PathValue("fid"))
	if f == nil {
		folderNotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, append(jobj{{"@odata.context", c.base + "/$metadata#users('" + c.mb.ID + "')/mailFolders/$entity"}}, c.folderJSON(f, fields)...))
}

// handleFolderCreate answers POST /mailFolders and .../childFolders: 201.
func (s *Sim) handleFolderCreate(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	var body struct {
		DisplayName string `json:"displayName"`
		IsHidden    bool   `json:"isHidden"`
	}
	if !readJSONBody(w, r, &body) {
		return
	}
	if strings.TrimSpace(body.DisplayName) == "" {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest", "The displayName property is required.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := c.d.root()
	if fid := r.PathValue("fid"); fid != "" {
		if parent = c.d.folderByRef(fid); parent == nil {
			folderNotFound(w, r)
			return
		}
	}
	// ErrorFolderExists and its text are the sim's own (not in the reference).
	for _, f := range c.d.children(parent.id, true) {
		if strings.EqualFold(f.name, body.DisplayName) {
			writeGraphError(w, r, http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists.")
			return
		}
	}
	f := c.d.addFolder(body.DisplayName, parent.id, "")
	f.hidden = body.IsHidden
	writeJSON(w, http.StatusCreated, append(jobj{{"@odata.context", c.base + "/$metadata#users('" + c.mb.ID + "')/mailFolders/$entity"}}, c.folderJSON(f, nil)...))
}

// handleFolderUpdate answers PATCH /mailFolders/{fid}: rename.
func (s *Sim) handleFolderUpdate(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	var body struct {
		DisplayName *string `json:"displayName"`
	}
	if !readJSONBody(w, r, &body) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := c.d.folderByRef(r.PathValue("fid"))
	if f == nil {
		folderNotFound(w, r)
		return
	}
	if body.DisplayName != nil {
		if err := c.d.rename(f, *body.DisplayName); err != nil {
			writeGraphError(w, r, err.status, err.code, err.msg)
			return
		}
	}
	writeJSON(w, http.StatusOK, append(jobj{{"@odata.context", c.base + "/$metadata#users('" + c.mb.ID + "')/mailFolders/$entity"}}, c.folderJSON(f, nil)...))
}

// rename changes a folder's display name; its id stays.
func (d *mailData) rename(f *folder, name string) *graphError {
	if strings.TrimSpace(name) == "" {
		return &graphError{http.StatusBadRequest, "ErrorInvalidRequest", "The displayName property must not be empty."}
	}
	if f.wellKnown == "msgfolderroot" || f.wellKnown == "recoverableitemsdeletions" {
		return &graphError{http.StatusForbidden, "ErrorAccessDenied", msgAccessDenied}
	}
	for _, o := range d.children(f.parentID, true) {
		if o != f && strings.EqualFold(o.name, name) {
			return &graphError{http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists."}
		}
	}
	f.name = name
	return nil
}

// handleFolderDelete answers DELETE /mailFolders/{fid}: 204; like Exchange,
// the folder (with its contents) moves under Deleted Items.
func (s *Sim) handleFolderDelete(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := c.d.folderByRef(r.PathValue("fid"))
	if f == nil {
		folderNotFound(w, r)
		return
	}
	if f.wellKnown != "" {
		// Code and text are the sim's own (not in the reference).
		writeGraphError(w, r, http.StatusBadRequest, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted.")
		return
	}
	deleted := c.d.wellKnown["deleteditems"]
	if c.d.inTree(f.id, deleted) {
		c.d.deleteFolderTree(f)
	} else {
		f.parentID = deleted
	}
	w.WriteHeader(http.StatusNoContent)
}

// deleteFolderTree purges a folder, its subfolders and their messages.
func (d *mailData) deleteFolderTree(f *folder) {
	for _, c := range d.children(f.id, true) {
		d.deleteFolderTree(c)
	}
	for _, m := range d.inFolder(f.id) {
		d.purge(m)
	}
	delete(d.folders, f.id)
}
