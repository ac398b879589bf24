package serve

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/triage-router/triage/internal/suggest"
	"github.com/triage-router/triage/serve/proxy"
)

// checkKeys walks a decoded config document alongside the Go type it
// fills and returns an error for the first key that type does not have,
// named by its path in the file ("tiers.fast.base_ur") with the nearest
// known key and the keys that are allowed there. The YAML decoder's own
// message names the Go type instead ("field base_ur not found in type
// proxy.Tier"), which means nothing to a person editing the file.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkKeys(c, t, path); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return checkKeys(n.Alias, t, path)
	}
	// The proxy's tiers decode themselves from either of two shapes;
	// their keys are checked as the shape the file uses.
	if t == reflect.TypeFor[proxy.Tiers]() {
		if n.Kind == yaml.SequenceNode {
			return checkKeys(n, reflect.TypeFor[[]proxy.Tier](), path)
		}
		return checkKeys(n, reflect.TypeFor[twoTierKeys](), path)
	}
	// Types that decode themselves, and scalars, are the decoder's to
	// judge.
	if t.Implements(reflect.TypeFor[yaml.Unmarshaler]()) || reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeFor[time.Time]() {
			return nil
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // a merge key
				if err := checkKeys(v, t, path); err != nil {
					return err
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				return unknownKey(k, path, fields)
			}
			if err := checkKeys(v, ft, join(path, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// twoTierKeys are the keys of the two-tier form of tiers.
type twoTierKeys struct {
	Fast   proxy.Tier `yaml:"fast"`
	Strong proxy.Tier `yaml:"strong"`
}

// yamlFields maps the keys a struct accepts to their types, inline
// structs' keys included, as the YAML decoder sees them.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func unknownKey(k *yaml.Node, path string, fields map[string]reflect.Type) error {
	known := make([]string, 0, len(fields))
	for name := range fields {
		known = append(known, name)
	}
	sort.Strings(known)
	where := "at the top level"
	if path != "" {
		where = "in " + path
	}
	msg := fmt.Sprintf("line %d: %s is not a known setting", k.Line, join(path, k.Value))
	if near := suggest.Nearest(k.Value, known); near != "" {
		msg += fmt.Sprintf("; did you mean %s?", near)
	}
	return fmt.Errorf("%s (the settings %s are %s; see docs/serving.md)", msg, where, strings.Join(known, ", "))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// goTypeWords says what a Go type the decoder names is, in the words of
// a config file.
var goTypeWords = map[string]string{
	"time.Duration": `a duration such as "5s" or "250ms"`,
	"int":           "a whole number",
	"int64":         "a whole number (sizes are in bytes)",
	"uint64":        "a whole number",
	"float64":       "a number",
	"bool":          "true or false",
	"string":        "a string",
}

// The value is quoted for a scalar only: a list or mapping where a scalar
// (or another kind of collection) belongs is "cannot unmarshal !!seq into
// serve.Limits".
var cannotUnmarshal = regexp.MustCompile("^(line \\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")

// typeErrors rewrites the decoder's "cannot unmarshal !!str `x` into
// time.Duration" lines as "line 3: limits.read_timeout is x, a string;
// want a duration such as 5s", the key found in doc by its line; other
// errors pass unchanged.
func typeErrors(err error, doc *yaml.Node) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	lines := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		m := cannotUnmarshal.FindStringSubmatch(e)
		if m == nil {
			lines[i] = e
			continue
		}
		want, ok := goTypeWords[strings.TrimPrefix(m[4], "*")]
		if !ok {
			want = "a mapping of settings"
		}
		var line int
		fmt.Sscanf(m[1], "line %d", &line)
		key := keyAtLine(doc, line, "", m[3] == "")
		switch {
		case m[3] == "" && key != "": // a collection
			lines[i] = fmt.Sprintf("%s: %s is %s; want %s", m[1], key, yamlKind(m[2]), want)
		case m[3] == "":
			lines[i] = fmt.Sprintf("%s: a value is %s; want %s", m[1], yamlKind(m[2]), want)
		case key != "":
			lines[i] = fmt.Sprintf("%s: %s is %s, %s; want %s", m[1], key, m[3], yamlKind(m[2]), want)
		default:
			lines[i] = fmt.Sprintf("%s: %s is %s, want %s", m[1], m[3], yamlKind(m[2]), want)
		}
	}
	return errors.New(strings.Join(lines, "; "))
}

// keyAtLine is the path of the key whose value starts on line, or "".
// For a scalar error it is the key of the scalar on that line; for a
// collection error (a list or mapping where something else belongs) the
// innermost key whose value is a collection starting on that line, so
// "limits: [1, 2]" is about limits and "read_timeout: {a: 1}" about
// read_timeout, not a.
func keyAtLine(n *yaml.Node, line int, path string, collection bool) string {
	if n == nil {
		return ""
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, line, path, collection); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if v.Kind == yaml.ScalarNode {
				if v.Line == line && !collection {
					return p
				}
				continue
			}
			if r := keyAtLine(v, line, p, collection); r != "" {
				return r
			}
			if v.Line == line || k.Line == line {
				return p
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if k := keyAtLine(c, line, fmt.Sprintf("%s[%d]", path, i), collection); k != "" {
				return k
			}
		}
	}
	return ""
}

func yamlKind(tag string) string {
	switch tag {
	case "str":
		return "a string"
	case "int", "float":
		return "a number"
	case "bool":
		return "a boolean"
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	}
	return "a " + tag
}
