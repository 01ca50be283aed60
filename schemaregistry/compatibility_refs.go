package schemaregistry

// References: how the compatibility check follows $ref as gojsonschema
// does, each in its own document, and when it cannot do so soundly.

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"cqrsgate/internal/jsonvalue"
)

// document is a schema document, in which its $ref values resolve.
type document struct {
	root any
	// idChecked says whether idProblem has been looked for; idProblem is
	// why "#/..." references may not resolve as JSON Pointers into root.
	idChecked bool
	idProblem string
}

// resolve follows n's $ref, if any, to the schema it names: gojsonschema
// validates against that schema only, ignoring the $ref's siblings.
// Errors say why the reference cannot be followed soundly.
func (d *document) resolve(n schemaNode) (schemaNode, error) {
	seen := map[string]bool{}
	for {
		m, ok := n.v.(map[string]any)
		if !ok {
			return n, nil
		}
		v, ok := m["$ref"]
		if !ok {
			return n, nil
		}
		ref, ok := v.(string)
		if !ok {
			return n, fmt.Errorf("$ref %s is not a string", show(v))
		}
		if seen[n.loc] {
			return n, fmt.Errorf("$ref %q is part of a cycle", ref)
		}
		seen[n.loc] = true
		t, err := d.lookupAnchorOrPointer(ref)
		if err != nil {
			return n, err
		}
		n = t
	}
}

// lookup returns the value a reference of the form "#" or "#/pointer"
// names, as gojsonschema finds it.
func (d *document) lookup(ref string) (schemaNode, error) {
	if !d.idChecked {
		d.idProblem, d.idChecked = idProblem(d.root), true
	}
	if d.idProblem != "" {
		return schemaNode{}, fmt.Errorf("$ref %q may not name what it says: %s", ref, d.idProblem)
	}
	u, err := url.Parse(ref)
	if err != nil || !strings.HasPrefix(ref, "#") || u.Fragment != "" && !strings.HasPrefix(u.Fragment, "/") {
		return schemaNode{}, fmt.Errorf("$ref %q is not a JSON Pointer into the schema", ref)
	}
	n := schemaNode{v: d.root}
	if u.Fragment == "" {
		return n, nil
	}
	for _, token := range strings.Split(u.Fragment[1:], "/") {
		switch v := n.v.(type) {
		case map[string]any:
			key := strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
			x, ok := v[key]
			if !ok {
				return schemaNode{}, fmt.Errorf("$ref %q names nothing", ref)
			}
			n = schemaNode{v: x, loc: n.loc + "/" + escapePointer(key)}
		case []any:
			i, err := strconv.Atoi(token)
			if err != nil || i < 0 || i >= len(v) {
				return schemaNode{}, fmt.Errorf("$ref %q names nothing", ref)
			}
			n = schemaNode{v: v[i], loc: n.loc + "/" + strconv.Itoa(i)}
		default:
			return schemaNode{}, fmt.Errorf("$ref %q names nothing", ref)
		}
	}
	return n, nil
}

// idProblem reports an $id (or id) that may make gojsonschema resolve a
// "#/..." reference elsewhere than into the document's root: one whose
// fragment is a JSON Pointer (gojsonschema files the schema under that
// name, and looks names up before pointers), or one below the root that
// changes the base URI of references inside it. It walks doc as
// gojsonschema's reference pool does (eachSchemaObject), which also reads
// the values of default and examples.
func idProblem(doc any) string {
	var problem string
	eachSchemaObject(doc, nil, func(n map[string]any, loc string) bool {
		k := "$id"
		if _, ok := n["id"]; ok {
			k = "id"
		}
		s, ok := n[k].(string)
		if !ok {
			return true
		}
		u, err := url.Parse(s)
		switch {
		case err != nil:
			problem = fmt.Sprintf("%s %q is not a URI reference", k, s)
		case strings.HasPrefix(u.Fragment, "/"):
			problem = fmt.Sprintf("%s %q names a JSON Pointer", k, s)
		case loc != "" && !strings.HasPrefix(s, "#") && hasRef(n):
			problem = fmt.Sprintf("%s %q changes the base URI of the references inside it", k, s)
		}
		return problem == ""
	})
	return problem
}

// hasRef reports whether v holds a $ref at any depth.
func hasRef(v any) bool {
	switch n := v.(type) {
	case []any:
		return slices.ContainsFunc(n, hasRef)
	case map[string]any:
		if _, ok := n["$ref"]; ok {
			return true
		}
		for _, x := range n {
			if hasRef(x) {
				return true
			}
		}
	}
	return false
}

// sameMeaning reports whether a keyword's value in the writer, wv, means
// what its value in the reader, rv, means: equal JSON whose $ref values
// name equal schemas in both documents.
func (c *comparer) sameMeaning(wv, rv any) bool {
	if !jsonvalue.Equal(wv, rv) {
		return false
	}
	done := map[string]bool{}
	var refsAgree func(v any) bool
	refsAgree = func(v any) bool {
		switch n := v.(type) {
		case []any:
			return !slices.ContainsFunc(n, func(x any) bool { return !refsAgree(x) })
		case map[string]any:
			for k, x := range n {
				if k != "$ref" {
					if !refsAgree(x) {
						return false
					}
					continue
				}
				ref, ok := x.(string)
				if !ok {
					return false
				}
				if done[ref] {
					continue
				}
				done[ref] = true
				wt, werr := c.w.lookup(ref)
				rt, rerr := c.r.lookup(ref)
				if werr != nil || rerr != nil || !jsonvalue.Equal(wt.v, rt.v) || !refsAgree(wt.v) {
					return false
				}
			}
		}
		return true
	}
	return refsAgree(wv)
}
