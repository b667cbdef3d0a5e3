// Package envconfig reads a service's configuration from the environment
// into a struct with caarlos0/env tags, and redacts the URLs in it for logs.
// Errors name the environment variable to fix, not the Go field.
//
// Every variable V can instead be given as V_FILE, the path of a file
// holding the value (Docker and Kubernetes secrets are mounted as files):
// the file's content, without its trailing newline, is V's value.
package envconfig

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v11"
)

// Parse fills into, a pointer to a struct with `env` tags, from the
// environment (envDefault tags for unset variables). A bad value is an
// error naming its variable, one line per bad variable; errors.As still
// finds the env library's error (env.ParseError, ...) under each line.
//
// V_FILE (see the package comment) is read for every variable V of into;
// setting both V and V_FILE is an error, as is a V_FILE that cannot be read.
func Parse(into any) error {
	environ, err := withFiles(into, env.ToMap(os.Environ()))
	if err != nil {
		return err
	}
	return explain(into, env.ParseWithOptions(into, env.Options{Environment: environ}))
}

// FileSuffix turns a variable's name into its file variant's.
const FileSuffix = "_FILE"

// maxFileBytes bounds a V_FILE: values are secrets and URLs, not documents.
const maxFileBytes = 64 << 10

// withFiles returns environ with the value of each V_FILE read into V, for
// the variables of into.
func withFiles(into any, environ map[string]string) (map[string]string, error) {
	var errs []error
	for _, names := range varNames(reflect.TypeOf(into)) {
		for _, name := range names {
			path, ok := environ[name+FileSuffix]
			if !ok {
				continue
			}
			if _, set := environ[name]; set {
				errs = append(errs, fmt.Errorf("%s and %s%s: set one, not both", name, name, FileSuffix))
				continue
			}
			v, err := readValue(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s%s: %w", name, FileSuffix, err))
				continue
			}
			environ[name] = v
		}
	}
	return environ, errors.Join(errs...)
}

// readValue is the content of the file at path without trailing line ends
// (editors and `echo` add one; a secret never ends in one).
func readValue(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err // names the path, never the content
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxFileBytes {
		return "", fmt.Errorf("%s: larger than %d bytes", path, maxFileBytes)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Defaults fills into with its envDefault values alone, as if the
// environment were empty: the configuration that code (devstack, tests)
// starts from.
func Defaults(into any) error {
	return explain(into, env.ParseWithOptions(into, env.Options{Environment: map[string]string{}}))
}

// varError is one bad variable: a message naming it, over the env error.
type varError struct {
	msg string
	err error
}

func (e *varError) Error() string { return e.msg }
func (e *varError) Unwrap() error { return e.err }

// explain rewrites env's errors, which name Go fields, to name variables.
func explain(into any, err error) error {
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	vars := varNames(reflect.TypeOf(into))
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		errs = append(errs, &varError{msg: message(e, vars), err: e})
	}
	return errors.Join(errs...)
}

func message(err error, vars map[string][]string) string {
	name := func(field string) string {
		if v := vars[field]; len(v) > 0 {
			return strings.Join(v, " or ") // the same field name in two nested structs
		}
		return field
	}
	var (
		parse    env.ParseError
		noParser env.NoParserError
		notSet   env.VarIsNotSetError
		empty    env.EmptyVarError
		file     env.LoadFileContentError
		badURL   *url.Error
	)
	switch {
	case errors.As(err, &parse) && errors.As(unwrapValueError(parse.Err), &badURL):
		// url.Error repeats the whole value, credentials included.
		return fmt.Sprintf("%s: invalid value: not a URL: %v", name(parse.Name), badURL.Err)
	case errors.As(err, &parse):
		return fmt.Sprintf("%s: invalid value: %v", name(parse.Name), parse.Err)
	case errors.As(err, &noParser):
		return fmt.Sprintf("%s: envconfig: no parser for type %s", name(noParser.Name), noParser.Type)
	case errors.As(err, &notSet):
		return notSet.Key + ": must be set"
	case errors.As(err, &empty):
		return empty.Key + ": must not be empty"
	case errors.As(err, &file):
		return fmt.Sprintf("%s: %v", file.Key, file.Err)
	}
	return "envconfig: " + err.Error() // a bad struct or tag: a bug, not a bad variable
}

// unwrapValueError is the error under an env.ParseValueError, which has
// no Unwrap method for errors.As to find it by.
func unwrapValueError(err error) error {
	var pv env.ParseValueError
	if errors.As(err, &pv) {
		return pv.Err
	}
	return err
}

// varNames maps the Go field names of the struct t (or *t) to the variables
// that fill them, walking nested structs as env does, with their envPrefix.
// Slices of structs, whose variables are numbered, are left out.
func varNames(t reflect.Type) map[string][]string {
	vars := map[string][]string{}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct || seen[t] {
			return // seen: a recursive type (env walks it only as deep as it is set)
		}
		seen[t] = true
		defer delete(seen, t)
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			key, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			if key == "-" {
				continue
			}
			if key != "" {
				vars[f.Name] = append(vars[f.Name], prefix+key)
			}
			walk(f.Type, prefix+f.Tag.Get("envPrefix"))
		}
	}
	walk(t, "")
	return vars
}
