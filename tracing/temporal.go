package tracing

import (
	"context"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"

	"github.com/dispatchflow/dispatchflow/message"
)

// TemporalInstrumentation is the instrumentation scope of the Temporal SDK's
// spans: the name its interceptor uses by default.
const TemporalInstrumentation = "temporal-sdk-go"

// workflowIDKey is the attribute the SDK's tracing interceptor names a
// workflow by, on every span of its.
const workflowIDKey = attribute.Key("temporalWorkflowID")

// Interceptors returns the Temporal client interceptors of tp (nil when tp is
// nil): Temporal's OpenTelemetry interceptor, which on the client spans each
// start, signal, query and update ("StartWorkflow:Message",
// "SignalWorkflow:Event") and carries its trace context to the workflow in
// Temporal's headers, and on the workers made from the client spans each
// workflow run, signal handled, activity scheduled and activity run
// ("RunWorkflow:Message", "RunActivity:Send", "RunActivity:Postback", local
// activities included), every span of a message with its dispatch_id; and
// ahead of it one that tells Handler which messages a request concerned.
//
// The trace context travels as W3C traceparent only: no baggage (an outside
// caller's would ride along into every workflow).
func Interceptors(tp trace.TracerProvider) ([]interceptor.ClientInterceptor, error) {
	if tp == nil {
		return nil, nil
	}
	ti, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
		Tracer:            tp.Tracer(TemporalInstrumentation),
		TextMapPropagator: propagation.TraceContext{},
		DisableBaggage:    true,
		SpanStarter:       startMessageSpan,
	})
	if err != nil {
		return nil, err
	}
	return []interceptor.ClientInterceptor{&dispatchIDs{}, ti}, nil
}

// startMessageSpan starts the SDK interceptor's spans as it would, as
// messageSpans.
func startMessageSpan(ctx context.Context, t trace.Tracer, name string, opts ...trace.SpanStartOption) trace.Span {
	_, span := t.Start(ctx, name, opts...)
	return messageSpan{span}
}

// messageSpan adds dispatch_id beside the SDK's temporalWorkflowID when the
// workflow is a message's (its workflow ID is its dispatch_id): the key the
// logs use, so one search finds a message's spans and log lines.
type messageSpan struct{ trace.Span }

func (s messageSpan) SetAttributes(kv ...attribute.KeyValue) {
	for _, a := range kv {
		if a.Key == workflowIDKey && message.ValidDispatchID(a.Value.AsString()) {
			kv = append(slices.Clip(kv), DispatchIDKey.String(a.Value.AsString()))
			break
		}
	}
	s.Span.SetAttributes(kv...)
}

// dispatchIDs notes the workflow each client call names for the HTTP span of
// the request making it (see Handler).
type dispatchIDs struct {
	interceptor.ClientInterceptorBase
}

func (*dispatchIDs) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &dispatchIDsOutbound{interceptor.ClientOutboundInterceptorBase{Next: next}}
}

type dispatchIDsOutbound struct {
	interceptor.ClientOutboundInterceptorBase
}

func (o *dispatchIDsOutbound) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	if in.Options != nil {
		noteDispatchID(ctx, in.Options.ID)
	}
	return o.Next.ExecuteWorkflow(ctx, in)
}

func (o *dispatchIDsOutbound) SignalWorkflow(ctx context.Context, in *interceptor.ClientSignalWorkflowInput) error {
	noteDispatchID(ctx, in.WorkflowID)
	return o.Next.SignalWorkflow(ctx, in)
}

func (o *dispatchIDsOutbound) QueryWorkflow(ctx context.Context, in *interceptor.ClientQueryWorkflowInput) (converter.EncodedValue, error) {
	noteDispatchID(ctx, in.WorkflowID)
	return o.Next.QueryWorkflow(ctx, in)
}

func (o *dispatchIDsOutbound) UpdateWorkflow(ctx context.Context, in *interceptor.ClientUpdateWorkflowInput) (client.WorkflowUpdateHandle, error) {
	noteDispatchID(ctx, in.WorkflowID)
	return o.Next.UpdateWorkflow(ctx, in)
}

func (o *dispatchIDsOutbound) DescribeWorkflow(ctx context.Context, in *interceptor.ClientDescribeWorkflowInput) (*interceptor.ClientDescribeWorkflowOutput, error) {
	noteDispatchID(ctx, in.WorkflowID)
	return o.Next.DescribeWorkflow(ctx, in)
}
