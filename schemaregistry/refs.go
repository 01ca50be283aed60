package schemaregistry

// What a schema's references may do: stay inside the schema, never make
// the validator fetch anything, and never send it round a loop.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/xeipuuv/gojsonschema"
)

// inPlaceKeywords hold schemas that gojsonschema applies to the very value
// the schema containing them is applied to (besides $ref): going round a
// loop of them and of $ref never reaches the end of the data.
var inPlaceKeywords = map[string]bool{
	"allOf": true, "anyOf": true, "oneOf": true, "not": true, "if": true, "then": true, "else": true,
	"dependencies": true, // its schemas (its lists of names are no schemas)
}

// descendingKeywords hold schemas that gojsonschema applies to a part of
// the value (a property, an element, a property name): a loop through one
// of them ends with the data.
var descendingKeywords = map[string]bool{
	"properties": true, "patternProperties": true, "additionalProperties": true,
	"items": true, "additionalItems": true, "contains": true, "propertyNames": true,
}

// checkRefCycles refuses a schema whose validation could go round a loop
// without descending into the data: a $ref that leads, through $refs and
// keywords applying to the same value (allOf, anyOf, oneOf, not, if, then,
// else, dependencies), back to where it started, such as
// {"properties": {"p": {"$ref": "#/properties/p"}}} or definitions a and
// b referring to each other. gojsonschema follows such a loop until the
// process runs out of stack, which no recover can catch. A loop through a
// keyword that descends (properties, items, ...) is fine: recursive data
// types are written so.
//
// Only the schemas validation reaches from the root are looked at, as
// gojsonschema sees them: a $ref's siblings are ignored, and $ref values
// are JSON Pointers into doc (see document.lookup: a reference the
// registry cannot follow so is refused too). Errors are *Error with
// CodeInvalid naming the loop.
func checkRefCycles(doc any) error {
	d := &document{root: doc}
	const (
		unseen = iota
		active // on the current path of in-place steps
		done
	)
	state := map[string]int{}
	var path []string              // the in-place steps being followed
	next := []schemaNode{{v: doc}} // schemas reached by descending, still to look at
	var visit func(n schemaNode) error
	visit = func(n schemaNode) error {
		switch state[n.loc] {
		case active:
			i := len(path) - 1
			for i > 0 && path[i] != n.loc {
				i--
			}
			loop := append(append([]string{}, path[i:]...), n.loc)
			for j, loc := range loop {
				loop[j] = "#" + loc
			}
			return invalid("the schema's references go round a loop that consumes no data (%s): validating an event would never end; make the loop pass through properties, items or another keyword that descends into the data", strings.Join(loop, " -> "))
		case done:
			return nil
		}
		state[n.loc] = active
		path = append(path, n.loc)
		inPlace, descending, err := d.applied(n)
		if err != nil {
			return invalid("%s", err.Error())
		}
		for _, c := range inPlace {
			if err := visit(c); err != nil {
				return err
			}
		}
		next = append(next, descending...)
		path = path[:len(path)-1]
		state[n.loc] = done
		return nil
	}
	for len(next) > 0 {
		n := next[len(next)-1]
		next = next[:len(next)-1]
		if err := visit(n); err != nil {
			return err
		}
	}
	return nil
}

// applied returns the schemas gojsonschema applies when it applies n: to
// the same value (inPlace) and to parts of it (descending). A schema with
// a $ref applies only the schema the reference names.
func (d *document) applied(n schemaNode) (inPlace, descending []schemaNode, err error) {
	m, ok := n.v.(map[string]any)
	if !ok {
		return nil, nil, nil // a boolean schema (or no schema at all)
	}
	if v, ok := m["$ref"]; ok {
		ref, ok := v.(string)
		if !ok {
			return nil, nil, fmt.Errorf("#%s/$ref: %s is not a string", n.loc, show(v))
		}
		if plainName(ref) {
			t, err := d.anchorTarget(ref)
			if err != nil {
				return nil, nil, fmt.Errorf("#%s/$ref: %w", n.loc, err)
			}
			return []schemaNode{t}, nil, nil
		}
		t, err := d.lookup(ref)
		if err != nil {
			return nil, nil, fmt.Errorf("#%s/$ref: %w", n.loc, err)
		}
		return []schemaNode{t}, nil, nil
	}
	for _, k := range sortedKeys(m) {
		if !inPlaceKeywords[k] && !descendingKeywords[k] {
			continue
		}
		var children []schemaNode
		loc := n.loc + "/" + escapePointer(k)
		switch v := m[k].(type) {
		case map[string]any:
			if k == "properties" || k == "patternProperties" || k == "dependencies" {
				for _, name := range sortedKeys(v) { // the keys are names
					if _, isList := v[name].([]any); !isList {
						children = append(children, schemaNode{v: v[name], loc: loc + "/" + escapePointer(name)})
					}
				}
			} else {
				children = append(children, schemaNode{v: v, loc: loc})
			}
		case []any: // allOf, anyOf, oneOf, items as a tuple
			for i, x := range v {
				children = append(children, schemaNode{v: x, loc: loc + "/" + strconv.Itoa(i)})
			}
		}
		if inPlaceKeywords[k] {
			inPlace = append(inPlace, children...)
		} else {
			descending = append(descending, children...)
		}
	}
	return inPlace, descending, nil
}

// checkNoIDs refuses $id (and id, which gojsonschema also reads) in the
// schemas of a schema being registered, but for plain-name fragments
// ("#address", which "$ref": "#address" names): any other identifier
// changes what the references inside it resolve against, and gojsonschema
// fetches a document named by an absolute one (over HTTP, or a file) to
// resolve them (localLoader refuses that too). The values of const, enum,
// default and examples are data, not schemas: an example event may well
// have an id field.
func checkNoIDs(doc any) error {
	var err error
	eachSchemaObject(doc, []string{"default", "examples"}, func(n map[string]any, loc string) bool {
		for _, k := range []string{"$id", "id"} {
			if s, ok := n[k].(string); ok && !plainName(s) {
				err = invalid("%s/%s: %q: schema identifiers are not supported, but for plain names (\"#address\"): every $ref resolves within this schema, and the registry never fetches anything; remove %s", loc, k, s, k)
				return false
			}
		}
		return true
	})
	return err
}

// eachSchemaObject calls visit with every object of doc that gojsonschema
// may take for a schema when it looks for identifiers, and its JSON
// Pointer: all of doc's objects but the values of const and enum (literal
// values) and of the keywords in skip, and the maps of properties,
// dependencies and patternProperties themselves (their keys are names,
// their values schemas). It stops when visit returns false.
func eachSchemaObject(doc any, skip []string, visit func(n map[string]any, loc string) bool) {
	var walk func(v any, loc string) bool
	walk = func(v any, loc string) bool {
		switch n := v.(type) {
		case []any:
			for i, x := range n {
				if !walk(x, loc+"/"+strconv.Itoa(i)) {
					return false
				}
			}
		case map[string]any:
			if !visit(n, loc) {
				return false
			}
			for _, k := range sortedKeys(n) {
				x, at := n[k], loc+"/"+escapePointer(k)
				switch {
				case k == "const", k == "enum", slices.Contains(skip, k):
					continue
				case k == "properties", k == "dependencies", k == "patternProperties":
					if m, ok := x.(map[string]any); ok {
						for _, name := range sortedKeys(m) {
							if !walk(m[name], at+"/"+escapePointer(name)) {
								return false
							}
						}
						continue
					}
				}
				if !walk(x, at) {
					return false
				}
			}
		}
		return true
	}
	walk(doc, "")
}

// plainName reports whether id is a plain-name fragment ("#address"):
// a name for the schema within its document, which changes no base URI.
func plainName(id string) bool {
	if len(id) < 2 || id[0] != '#' {
		return false
	}
	for _, r := range id[1:] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':') {
			return false
		}
	}
	return true
}

// lookupAnchorOrPointer resolves ref as gojsonschema does: a plain-name
// fragment ("#address") names the schema whose identifier it is (see
// anchorTarget), anything else is a JSON Pointer (lookup).
func (d *document) lookupAnchorOrPointer(ref string) (schemaNode, error) {
	if !plainName(ref) {
		return d.lookup(ref)
	}
	return d.anchorTarget(ref)
}

// anchorTarget returns the schema the plain-name reference ref names: the
// one whose $id is ref, or the root when none is (gojsonschema v1.2.0 then
// resolves the reference to the document). What gojsonschema takes a name
// for depends on much that is easy to get wrong (a repeated identifier
// hides everything below its second copy, identifiers resolve against
// their parent's, id hides $id, identifiers count in the values of
// examples and default), and a wrong guess lets a loop through that ends
// the process. So plain names are followed only in a schema whose
// identifiers leave no doubt: all of them plain names, each given once, by
// $id alone; otherwise the reference is an error.
func (d *document) anchorTarget(ref string) (schemaNode, error) {
	var (
		found   []schemaNode
		seen    = map[string]bool{}
		problem string
	)
	eachSchemaObject(d.root, nil, func(n map[string]any, loc string) bool {
		if _, ok := n["id"]; ok && problem == "" {
			problem = fmt.Sprintf("#%s has an id", loc)
		}
		if v, ok := n["$id"]; ok {
			id, _ := v.(string)
			switch {
			case problem != "":
			case !plainName(id):
				problem = fmt.Sprintf("#%s/$id %s is not a plain name", loc, show(v))
			case seen[id]:
				problem = fmt.Sprintf("$id %q is given more than once", id)
			}
			seen[id] = true
			if id == ref {
				found = append(found, schemaNode{v: n, loc: loc})
			}
		}
		return true
	})
	switch {
	case problem != "":
		return schemaNode{}, fmt.Errorf("$ref %q is a plain name, which is followed only when every identifier in the schema is a plain name given once by $id (%s)", ref, problem)
	case len(found) == 0:
		return schemaNode{v: d.root}, nil
	}
	return found[0], nil
}

// localLoader loads a schema document for gojsonschema, which resolves
// the document's references with the loaders of its LoaderFactory: this
// one refuses every document it does not have already, so compiling a
// schema never does network or file I/O, whatever its $id and $ref say.
type localLoader struct{ gojsonschema.JSONLoader }

// LoaderFactory implements gojsonschema.JSONLoader.
func (localLoader) LoaderFactory() gojsonschema.JSONLoaderFactory { return noFetching{} }

// noFetching makes loaders that refuse to load anything.
type noFetching struct{}

// New implements gojsonschema.JSONLoaderFactory.
func (noFetching) New(source string) gojsonschema.JSONLoader {
	return refusedLoader{JSONLoader: gojsonschema.NewReferenceLoader(source), source: source}
}

// refusedLoader is the loader of a document outside the schema: loading
// it fails.
type refusedLoader struct {
	gojsonschema.JSONLoader // for JsonSource and JsonReference; never loads
	source                  string
}

// LoadJSON implements gojsonschema.JSONLoader: it refuses.
func (l refusedLoader) LoadJSON() (any, error) {
	return nil, fmt.Errorf("a reference resolves to %q, outside the schema: the registry never fetches anything (remove $id, and use references starting with #/)", l.source)
}

// LoaderFactory implements gojsonschema.JSONLoader.
func (refusedLoader) LoaderFactory() gojsonschema.JSONLoaderFactory { return noFetching{} }

// draft07MetaSchema is the draft-07 meta-schema, compiled once: every
// schema is validated against it before it is compiled. gojsonschema
// keeps the meta-schemas of the drafts it knows in memory, so loading it
// does no I/O (and would fail, not fetch, if it had to: localLoader).
var draft07MetaSchema = sync.OnceValues(func() (*gojsonschema.Schema, error) {
	doc, err := gojsonschema.NewReferenceLoader("http://json-schema.org/draft-07/schema").LoadJSON()
	if err != nil {
		return nil, err
	}
	loader := gojsonschema.NewSchemaLoader()
	loader.Draft = gojsonschema.Draft7
	return loader.Compile(localLoader{gojsonschema.NewGoLoader(doc)})
})
