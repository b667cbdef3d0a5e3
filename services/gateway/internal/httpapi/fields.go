package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/shared/api"
)

// bodyFields reads the named string fields of a JSON object or form body
// (other fields are ignored, as on the login route). A field that is absent,
// null or empty reads as "".
func bodyFields(c *gin.Context, names ...string) (map[string]string, error) {
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	return parseFields(c.GetHeader("Content-Type"), body, names...)
}

func parseFields(contentType string, body []byte, names ...string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	mt, _, err := mime.ParseMediaType(contentType)
	switch {
	case err == nil && mt == "application/json":
		raw, err := jsonObject(body)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if out[n], err = jsonString(n, raw[n]); err != nil {
				return nil, err
			}
		}
	case err == nil && mt == "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, api.Errorf(api.CodeInvalidRequest, "malformed form body")
		}
		for _, n := range names {
			out[n] = vals.Get(n)
		}
	default:
		return nil, api.Errorf(api.CodeInvalidRequest, "Content-Type must be application/json or application/x-www-form-urlencoded")
	}
	return out, nil
}

// jsonObject decodes a JSON object body into its members; an empty body or
// null is an empty object.
func jsonObject(body []byte) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if len(bytes.TrimSpace(body)) == 0 {
		return raw, nil
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, api.Errorf(api.CodeInvalidRequest, "body must be a JSON object")
		}
		return nil, api.Errorf(api.CodeInvalidRequest, "malformed JSON body")
	}
	return raw, nil
}

// required checks a field that must be present and at most maxBytes long.
func required(field, v string, maxBytes int) error {
	if v == "" {
		return invalidField(field, "is required")
	}
	if len(v) > maxBytes {
		return invalidField(field, fmt.Sprintf("must be at most %d bytes", maxBytes))
	}
	return nil
}

// opaque checks an optional token-like value (a code, a bind token): at
// most maxBytes of printable ASCII without spaces.
func opaque(field, v string, maxBytes int) error {
	switch {
	case v == "":
		return nil
	case len(v) > maxBytes:
		return invalidField(field, fmt.Sprintf("must be at most %d bytes", maxBytes))
	case !isVisibleASCII(v):
		return invalidField(field, "must be printable ASCII without spaces")
	}
	return nil
}
