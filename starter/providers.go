package starter

import (
	"context"
	"net/http"
	"time"

	"github.com/dispatchflow/dispatchflow/circuit"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// providersReadTimeout bounds GET /v1/providers' reads of the circuits, all
// of them together.
const providersReadTimeout = 10 * time.Second

// providerView is one provider of GET /v1/providers: its circuit as of now.
type providerView struct {
	workflows.CircuitState
	// StateError says why the circuit could not be read (its state is then
	// "unknown").
	StateError string `json:"state_error,omitempty"`
}

// circuitUnknown is the state of a circuit that could not be read.
const circuitUnknown = "unknown"

// listProviders is GET /v1/providers: the providers of DISPATCHFLOW_ESP in
// order (the failover list), each with its circuit. A provider whose circuit
// was never reported on is closed. The scope is endpoints:admin, as for the
// endpoints' health: operational state, and the same for every workspace.
func (a *API) listProviders(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), providersReadTimeout)
	defer cancel()
	out := struct {
		Providers []providerView `json:"providers"`
	}{Providers: []providerView{}}
	for _, p := range a.cfg.ESPs() {
		st, err := circuit.Read(ctx, a.client, p)
		v := providerView{CircuitState: st.At(a.now())}
		if err != nil {
			v.CircuitState = workflows.CircuitState{Provider: p, State: circuitUnknown}
			v.StateError = "reading its circuit: " + err.Error()
		}
		out.Providers = append(out.Providers, v)
	}
	writeJSON(w, http.StatusOK, out)
}

// withFailover gives a new message the failover list of DISPATCHFLOW_ESP,
// when it names several providers, and the budget of each: the workflow then
// names the provider of each hand-over. With one provider the input stays as
// it was before failover existed.
func (a *API) withFailover(in *workflows.MessageInput) {
	in.Providers = espRoutes(a.cfg.ESPs(), a.cfg.SMTPProvider)
	if in.Providers != nil {
		in.Policy.FailoverAfter = a.cfg.ESPFailoverAfter
	}
}

// espRoutes is the failover list of providers (nil for one provider): smtp's
// events come from smtpProvider's intake.
func espRoutes(providers []string, smtpProvider string) []workflows.ESPRoute {
	if len(providers) < 2 {
		return nil
	}
	out := make([]workflows.ESPRoute, len(providers))
	for i, p := range providers {
		out[i] = workflows.ESPRoute{Name: p}
		if p == "smtp" {
			out[i].Intake = smtpProvider
		}
	}
	return out
}
