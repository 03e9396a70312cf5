// Package postback delivers postbacks: the HTTP notifications dispatchflow sends
// to a customer's endpoints when a message changes status (Braze's "event status
// postback"), or, for endpoints that subscribe to them, on engagement events.
//
// It is the pure delivery machinery, without Temporal: endpoints and their
// configuration file (LoadFile, Set), payload formats (Render: braze, ajo,
// sarbacane), Standard Webhooks signing (Sign), authentication (basic, bearer,
// JWT), the retry schedule with jitter and Retry-After clamping (Schedule), and one
// delivery attempt (Deliver) classified as success, failure or gone. The Postback
// activity (package activities) strings them together and lets Temporal own the
// retries; the API's "test the postback" route calls Deliver directly.
//
// docs/postbacks.md is the operator's reference for all of it.
package postback
