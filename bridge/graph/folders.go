package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Folder is a resolved mail folder. Folder ids are constant for the life of
// the folder (renames and moves keep them), so callers cache ID.
type Folder struct {
	ID               string `json:"id"`
	DisplayName      string `json:"displayName"`
	ParentFolderID   string `json:"parentFolderId"`
	ChildFolderCount int    `json:"childFolderCount"`
	TotalItemCount   int    `json:"totalItemCount"`
	UnreadItemCount  int    `json:"unreadItemCount"`
	// Path is the resolved path with each folder's real display name, e.g.
	// "Inbox/Support" for a configured "inbox/support". Empty from GetFolder.
	Path string `json:"-"`
}

// folderSelect keeps folder listings small.
const folderSelect = "id,displayName,parentFolderId,childFolderCount,totalItemCount,unreadItemCount"

// folderPageSize is $top for child folder listings; Graph's default is 10.
const folderPageSize = 100

// maxFolderPages bounds a child folder listing (100 per page) against a
// server that never stops handing out nextLinks.
const maxFolderPages = 1000

// wellKnownFolders maps a first path segment, lower-cased with spaces
// removed, to the locale-independent well-known name Graph accepts in place
// of a folder id. Both the names ("deleteditems") and the English display
// names ("Deleted Items") are accepted.
var wellKnownFolders = map[string]string{
	"archive": "archive", "clutter": "clutter", "conflicts": "conflicts",
	"conversationhistory": "conversationhistory", "deleteditems": "deleteditems",
	"drafts": "drafts", "inbox": "inbox", "junkemail": "junkemail", "junk": "junkemail",
	"localfailures": "localfailures", "msgfolderroot": "msgfolderroot", "outbox": "outbox",
	"recoverableitemsdeletions": "recoverableitemsdeletions", "scheduled": "scheduled",
	"searchfolders": "searchfolders", "sentitems": "sentitems", "serverfailures": "serverfailures",
	"syncissues": "syncissues",
}

// FolderError is a folder path that does not resolve: a segment that names
// no folder (Is ErrFolderNotFound; Existing lists the names that do exist at
// that level) or more than one (Is ErrFolderAmbiguous; Matches holds them).
type FolderError struct {
	Path     string   // the path as configured
	Segment  string   // the segment that failed
	Parent   string   // resolved path of the level searched; "" for the top
	Existing []string // display names at that level (not found)
	Matches  []Folder // the folders that matched (ambiguous)
	Err      error    // ErrFolderNotFound or ErrFolderAmbiguous
}

func (e *FolderError) Error() string {
	where := "at the top of the mailbox"
	if e.Parent != "" {
		where = fmt.Sprintf("under %q", e.Parent)
	}
	if e.Err == ErrFolderAmbiguous {
		var names []string
		for _, f := range e.Matches {
			names = append(names, fmt.Sprintf("%q (id %s)", f.DisplayName, f.ID))
		}
		return fmt.Sprintf("resolve folder %q: %d folders named %q %s: %s", e.Path, len(e.Matches),
			e.Segment, where, strings.Join(names, " and "))
	}
	exist := "there are no folders there"
	if len(e.Existing) > 0 {
		quoted := make([]string, len(e.Existing))
		for i, n := range e.Existing {
			quoted[i] = fmt.Sprintf("%q", n)
		}
		exist = "folders there: " + strings.Join(quoted, ", ")
	}
	return fmt.Sprintf("resolve folder %q: no folder %q %s; %s", e.Path, e.Segment, where, exist)
}

func (e *FolderError) Unwrap() error { return e.Err }

// ResolveFolder resolves a path such as "Inbox/Support/Tier2" to a folder.
// An empty path is the inbox. The first segment may be a well-known name or
// its English display name (case-insensitive: inbox, "Deleted Items",
// sentitems, archive, msgfolderroot ...) or else the display name of a
// top-level folder; later segments are display names of child folders.
// Names match case-insensitively; a segment matching two folders is an
// ambiguity error naming both, a missing one a *FolderError listing the
// names that do exist at that level.
func (m *MailboxClient) ResolveFolder(ctx context.Context, path string) (Folder, error) {
	segs, err := splitFolderPath(path)
	if err != nil {
		return Folder{}, err
	}
	if len(segs) == 0 {
		f, err := m.GetFolder(ctx, "inbox")
		if err != nil {
			return Folder{}, fmt.Errorf("resolve folder %q: %w", path, err)
		}
		f.Path = f.DisplayName
		return f, nil
	}
	var cur Folder
	var found bool
	if wk, ok := wellKnownFolders[strings.ToLower(strings.ReplaceAll(segs[0], " ", ""))]; ok {
		f, err := m.GetFolder(ctx, wk)
		switch {
		case err == nil:
			cur, found = f, true
			cur.Path = f.DisplayName
		case !isFolderNotFound(err):
			return Folder{}, fmt.Errorf("resolve folder %q: %w", path, err)
		}
		// A well-known folder the mailbox lacks (archive often does not
		// exist) falls through to a display-name match at the top.
	}
	if !found {
		cur, err = m.matchChild(ctx, path, Folder{}, segs[0])
		if err != nil {
			return Folder{}, err
		}
	}
	for _, seg := range segs[1:] {
		if cur, err = m.matchChild(ctx, path, cur, seg); err != nil {
			return Folder{}, err
		}
	}
	return cur, nil
}

// isFolderNotFound is true only for Graph's own "no such folder" answer,
// not for a mailbox-level failure that also surfaces on the folder call.
func isFolderNotFound(err error) bool {
	var ge *Error
	return errors.As(err, &ge) && ge.sentinel() == ErrFolderNotFound
}

// splitFolderPath splits on '/', trimming spaces around segments and a
// leading or trailing slash; an empty segment in the middle is an error.
func splitFolderPath(path string) ([]string, error) {
	p := strings.Trim(strings.TrimSpace(path), "/")
	if p == "" {
		return nil, nil
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = strings.TrimSpace(s)
		if segs[i] == "" {
			return nil, fmt.Errorf("resolve folder %q: empty name between slashes; write a path like Inbox/Support", path)
		}
	}
	return segs, nil
}

// matchChild finds the child of parent (the top level when parent.ID is
// empty) whose display name equals name, case-insensitively.
func (m *MailboxClient) matchChild(ctx context.Context, path string, parent Folder, name string) (Folder, error) {
	var children []Folder
	if parent.ID == "" || parent.ChildFolderCount > 0 {
		var err error
		if children, err = m.ListChildFolders(ctx, parent.ID); err != nil {
			return Folder{}, fmt.Errorf("resolve folder %q: %w", path, err)
		}
	}
	var matches []Folder
	names := make([]string, 0, len(children))
	for _, f := range children {
		names = append(names, f.DisplayName)
		if strings.EqualFold(strings.TrimSpace(f.DisplayName), name) {
			matches = append(matches, f)
		}
	}
	switch len(matches) {
	case 0:
		return Folder{}, &FolderError{Path: path, Segment: name, Parent: parent.Path, Existing: names, Err: ErrFolderNotFound}
	case 1:
		f := matches[0]
		f.Path = f.DisplayName
		if parent.Path != "" {
			f.Path = parent.Path + "/" + f.DisplayName
		}
		return f, nil
	default:
		return Folder{}, &FolderError{Path: path, Segment: name, Parent: parent.Path, Matches: matches, Err: ErrFolderAmbiguous}
	}
}

// ListChildFolders lists every child folder of parentID (the top level of
// the mailbox when empty), following nextLink pages of 100.
func (m *MailboxClient) ListChildFolders(ctx context.Context, parentID string) ([]Folder, error) {
	q := url.Values{"$top": {fmt.Sprint(folderPageSize)}, "$select": {folderSelect}}
	next := m.url("/mailFolders", q)
	if parentID != "" {
		next = m.url("/mailFolders/"+url.PathEscape(parentID)+"/childFolders", q)
	}
	var out []Folder
	for page := 0; next != ""; page++ {
		if page >= maxFolderPages {
			return nil, fmt.Errorf("list child folders: more than %d pages; stopping", maxFolderPages)
		}
		if page > 0 {
			if err := m.c.checkLink(next); err != nil {
				return nil, fmt.Errorf("list child folders: %w", err)
			}
		}
		res, err := m.do(ctx, call{method: http.MethodGet, url: next, kind: kindFolder})
		if err != nil {
			return nil, fmt.Errorf("list child folders: %w", err)
		}
		var body struct {
			Value    []Folder `json:"value"`
			NextLink string   `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(res.body, &body); err != nil {
			return nil, fmt.Errorf("decode child folders: %w", err)
		}
		out = append(out, body.Value...)
		next = body.NextLink
	}
	return out, nil
}

// GetFolder reads one folder by id or well-known name, e.g. to re-check a
// cached id: a folder that is gone gives an error matching
// ErrFolderNotFound. The returned Path is empty.
func (m *MailboxClient) GetFolder(ctx context.Context, id string) (Folder, error) {
	if strings.TrimSpace(id) == "" {
		return Folder{}, fmt.Errorf("get folder: empty folder id")
	}
	u := m.url("/mailFolders/"+url.PathEscape(id), url.Values{"$select": {folderSelect}})
	res, err := m.do(ctx, call{method: http.MethodGet, url: u, kind: kindFolder})
	if err != nil {
		return Folder{}, fmt.Errorf("get folder: %w", err)
	}
	var f Folder
	if err := json.Unmarshal(res.body, &f); err != nil {
		return Folder{}, fmt.Errorf("decode folder: %w", err)
	}
	if strings.TrimSpace(f.ID) == "" {
		// Graph always returns the folder's id (GDC api/mailfolder-get.md);
		// an answer without one is not a folder, and syncing it would read
		// "/mailFolders//messages".
		return Folder{}, fmt.Errorf("decode folder %q: Graph's answer has no folder id", id)
	}
	return f, nil
}
