package esp

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-retryablehttp"
)

// SES hands messages to Amazon SES through the SES v2 SendEmail API
// (POST /v2/email/outbound-emails, SigV4-signed), with the official AWS SDK for
// Go v2. Name() is "ses".
//
// The message carries the message tag dispatch_id (EmailTags), and is sent
// through ConfigurationSet: SES publishes events (to SNS, then to us) only for
// messages sent through a configuration set with an event destination, and they
// carry the tag as mail.tags.dispatch_id. Tag values allow only
// [A-Za-z0-9_.@-]; dispatch ids are hex. Receipt.MessageID is SendEmail's
// MessageId, the events' mail.messageId.
//
// Answers: 200 is sent. MessageRejected, MailFromDomainNotVerifiedException and
// BadRequestException (an invalid address, …) are refusals whose reason is SES's
// message. Anything else — throttling (TooManyRequestsException), paused or
// suspended sending, an unknown configuration set (NotFoundException), refused
// credentials, 5xx, network errors — is transient. The SDK does not retry
// (Temporal does) and calls SES through a go-retryablehttp client.
type SES struct {
	// Region is the AWS region (DISPATCHFLOW_SES_REGION), e.g. "eu-west-1". Required.
	Region string
	// AccessKeyID, SecretAccessKey and the optional SessionToken are static
	// credentials (DISPATCHFLOW_SES_ACCESS_KEY_ID, …). Required.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// ConfigurationSet is the configuration set the message is sent through
	// (DISPATCHFLOW_SES_CONFIGURATION_SET). Without one SES publishes no events.
	ConfigurationSet string
	// BaseURL overrides the endpoint (https://email.{Region}.amazonaws.com) when set.
	BaseURL string
	// HTTP carries the SDK's requests; NewHTTPClient(APITimeout) when nil. It must not retry.
	HTTP *retryablehttp.Client

	once   sync.Once
	client *sesv2.Client
}

var _ Sender = (*SES)(nil)

// Name returns "ses".
func (s *SES) Name() string { return "ses" }

// sesRefusals are the SendEmail errors about the message itself.
var sesRefusals = map[string]bool{
	"MessageRejected":                    true,
	"MailFromDomainNotVerifiedException": true,
	"BadRequestException":                true,
}

// sdk returns the SES client, built on first use from the fields.
func (s *SES) sdk() *sesv2.Client {
	s.once.Do(func() { s.client = s.newClient() })
	return s.client
}

func (s *SES) newClient() *sesv2.Client {
	h := s.HTTP
	if h == nil {
		h = NewHTTPClient(APITimeout)
	}
	creds := aws.Credentials{AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey, SessionToken: s.SessionToken, Source: "dispatchflow configuration"}
	opts := sesv2.Options{
		Region: s.Region,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
		HTTPClient: h.StandardClient(),
		Retryer:    aws.NopRetryer{},
	}
	if s.BaseURL != "" {
		opts.BaseEndpoint = aws.String(s.BaseURL)
	}
	return sesv2.New(opts)
}

// Send hands e to SES; see SES for what its errors mean.
func (s *SES) Send(ctx context.Context, e Email) (Receipt, error) {
	if s.Region == "" || s.AccessKeyID == "" || s.SecretAccessKey == "" {
		return Receipt{}, errors.New("ses: no region or credentials configured (DISPATCHFLOW_SES_REGION, DISPATCHFLOW_SES_ACCESS_KEY_ID, DISPATCHFLOW_SES_SECRET_ACCESS_KEY)")
	}
	from, to, err := parseAddresses(e)
	if err != nil {
		return Receipt{}, err
	}
	body := &types.Body{}
	if e.Text != "" {
		body.Text = &types.Content{Data: aws.String(e.Text), Charset: aws.String("UTF-8")}
	}
	if e.HTML != "" {
		body.Html = &types.Content{Data: aws.String(e.HTML), Charset: aws.String("UTF-8")}
	}
	in := &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(from.String()),
		Destination:      &types.Destination{ToAddresses: []string{to.String()}},
		Content: &types.EmailContent{Simple: &types.Message{
			Subject: &types.Content{Data: aws.String(e.Subject), Charset: aws.String("UTF-8")},
			Body:    body,
		}},
		EmailTags: []types.MessageTag{{Name: aws.String("dispatch_id"), Value: aws.String(e.DispatchID)}},
	}
	if s.ConfigurationSet != "" {
		in.ConfigurationSetName = aws.String(s.ConfigurationSet)
	}
	out, err := s.sdk().SendEmail(ctx, in)
	if err != nil {
		var api smithy.APIError
		if errors.As(err, &api) {
			if sesRefusals[api.ErrorCode()] {
				return Receipt{}, &RefusedError{Reason: truncate(api.ErrorCode()+": "+api.ErrorMessage(), 500)}
			}
			return Receipt{}, fmt.Errorf("ses answered %s: %s", api.ErrorCode(), truncate(api.ErrorMessage(), 300))
		}
		return Receipt{}, fmt.Errorf("ses: %w", err)
	}
	return Receipt{Provider: s.Name(), MessageID: aws.ToString(out.MessageId), Response: "accepted by Amazon SES"}, nil
}
