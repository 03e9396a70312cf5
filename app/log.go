package app

import (
	"context"
	"io"
	"log/slog"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/message"
)

// Log keys: every line about a message carries KeyDispatchID. The Temporal SDK
// tags its workflow and activity lines with KeyWorkflowID, which for a Message
// workflow is the dispatch_id.
const (
	KeyDispatchID = "dispatch_id"
	KeyWorkflowID = "WorkflowID"
)

// NewLogger returns the process's logger on w (stderr): cfg.LogFormat (text or
// json) at cfg.LogLevel, adding dispatch_id to the Temporal SDK's lines about a
// message (see DispatchIDHandler). Dial routes the SDK's logger through it.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config.Load
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(DispatchIDHandler(h))
}

// DispatchIDHandler wraps h so that a line carrying a WorkflowID that is a
// dispatch_id (the Temporal SDK's workflow and activity logs) also carries
// dispatch_id, once: a line that already has one is left as it is.
func DispatchIDHandler(h slog.Handler) slog.Handler { return &dispatchIDHandler{Handler: h} }

type dispatchIDHandler struct {
	slog.Handler
	// id is a dispatch_id seen as WorkflowID among the handler's attributes.
	id string
	// done: dispatch_id is already among the handler's attributes.
	done bool
	// grouped: later attributes are inside a group, not about the line.
	grouped bool
}

func (h *dispatchIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	if !c.grouped {
		for _, a := range attrs {
			c.note(a)
		}
	}
	c.Handler = h.Handler.WithAttrs(attrs)
	return &c
}

func (h *dispatchIDHandler) WithGroup(name string) slog.Handler {
	c := *h
	inner := h.Handler
	if c.id != "" && !c.done {
		// Before the group, so that dispatch_id stays a top-level key.
		inner = inner.WithAttrs([]slog.Attr{slog.String(KeyDispatchID, c.id)})
		c.done = true
	}
	c.Handler = inner.WithGroup(name)
	c.grouped = true
	return &c
}

func (h *dispatchIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.done || h.grouped {
		return h.Handler.Handle(ctx, r)
	}
	c := *h
	r.Attrs(func(a slog.Attr) bool {
		c.note(a)
		return true
	})
	if c.done || c.id == "" {
		return h.Handler.Handle(ctx, r)
	}
	r = r.Clone()
	r.AddAttrs(slog.String(KeyDispatchID, c.id))
	return h.Handler.Handle(ctx, r)
}

// note records what attribute a says about the message.
func (h *dispatchIDHandler) note(a slog.Attr) {
	switch a.Key {
	case KeyDispatchID:
		h.done = true
	case KeyWorkflowID:
		if id := a.Value.String(); message.ValidDispatchID(id) {
			h.id = id
		}
	}
}
