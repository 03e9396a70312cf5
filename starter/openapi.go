package starter

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes every route of Routes; TestOpenAPIMatchesRoutes keeps
// the two in step.
//
//go:embed openapi.json
var openAPIDocument []byte

// openAPI is GET /openapi.json: the OpenAPI 3.1 document of this API.
func (a *API) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDocument)
}
