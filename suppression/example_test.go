package suppression_test

import (
	"fmt"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/suppression"
)

// A hard bounce reported for a message suppresses its address in the
// message's workspace; a later send to the address, in any case, is keyed the
// same and aborted with the entry's reason.
func Example() {
	key := []byte("example-suppression-key-0123456789abcdef") // DISPATCHFLOW_SUPPRESSION_KEY
	cause, ok := suppression.CauseOf("sendgrid", message.EventBounced, "bounce/bounce")
	fmt.Println(cause, ok)

	bounced, _ := suppression.Normalize("Ann <ann@example.com>")
	later, _ := suppression.Normalize("ANN@Example.com")
	fmt.Println(suppression.ID(key, "default", bounced) == suppression.ID(key, "default", later))
	fmt.Println(suppression.Hint(bounced))

	e := suppression.Entry{Cause: cause, Provider: "sendgrid", DispatchID: "acf471119f7449d579e8089032003ded",
		At: time.Date(2026, 11, 28, 9, 25, 0, 0, time.UTC)}
	fmt.Println(e.Reason())
	// Output:
	// hard_bounce true
	// true
	// a***@example.com
	// suppressed (hard bounce via sendgrid, dispatch acf471119f7449d579e8089032003ded, 2026-11-28T09:25:00Z)
}
