// Package conffile reads configuration files: YAML or JSON by extension, decoded
// strictly, with errors naming the field.
//
// YAML is converted to JSON first, so that both forms share one strict decoder
// and one set of struct tags.
package conffile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is a problem with one field of an entry.
type FieldError struct {
	// Field is the field's JSON path: "auth.token", "scopes[0]".
	Field string
	// Msg says what is wrong with it, without the field.
	Msg string
}

// Error returns Field and Msg: `scopes[0]: unknown scope "x"`.
func (f *FieldError) Error() string { return f.Field + ": " + f.Msg }

// Errorf returns a *FieldError about field, its message formatted as by fmt.Sprintf.
func Errorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ToJSON returns raw as JSON: converted from YAML for ext ".yaml" or ".yml", as is
// for ".json" (in any case). Any other ext is an error. An empty YAML document is
// the empty object.
func ToJSON(raw []byte, ext string) ([]byte, error) {
	switch strings.ToLower(ext) {
	case ".yaml", ".yml":
		return yamlToJSON(raw)
	case ".json":
		return raw, nil
	}
	return nil, fmt.Errorf("unknown extension %q (want .yaml, .yml or .json)", ext)
}

func yamlToJSON(b []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	if v == nil {
		v = map[string]any{}
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not representable as JSON: %w", err)
	}
	return out, nil
}

// Strict decodes the JSON b into v, refusing unknown fields. A type error is a
// *FieldError naming the field by its path from v ("inner.port"); an unknown field
// is one naming it alone, without its parents, so callers decoding a nested
// object apart prefix its name. A *FieldError returned by a field's UnmarshalJSON
// or UnmarshalText is returned as is. Other errors (syntax) are encoding/json's.
func Strict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var typeErr *json.UnmarshalTypeError
	var fe *FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return Errorf(typeErr.Field, "must be %s, not %s", typeErr.Type, typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no type for this error; its text is stable.
		return Errorf(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field")
	case errors.As(err, &fe):
		return fe
	}
	return err
}
