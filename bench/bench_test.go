package bench

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestOptionsCheck(t *testing.T) {
	if err := DefaultOptions().check(); err != nil {
		t.Fatalf("DefaultOptions: %v", err)
	}
	o := DefaultOptions()
	o.Rate, o.Scale, o.Temporal, o.Rounds, o.Messages, o.Concurrency = 7.5, 1000, "127.0.0.1:7233", 1, 2, 1
	if err := o.check(); err != nil {
		t.Fatalf("smallest options: %v", err)
	}
	for _, c := range []struct {
		field  string
		change func(*Options)
	}{
		{"Bin", func(o *Options) { o.Bin = "" }},
		{"Messages", func(o *Options) { o.Messages = 1 }},
		{"Concurrency", func(o *Options) { o.Concurrency = 0 }},
		{"Rounds", func(o *Options) { o.Rounds = 0 }},
		{"Rate", func(o *Options) { o.Rate = -1 }},
		{"Rate", func(o *Options) { o.Rate = math.NaN() }},
		{"Rate", func(o *Options) { o.Rate = math.Inf(1) }},
		{"Scale", func(o *Options) { o.Scale = -1 }},
	} {
		o := DefaultOptions()
		c.change(&o)
		if err := o.check(); err == nil || !strings.HasPrefix(err.Error(), "option "+c.field+":") {
			t.Errorf("%s: %v, want an error naming the field", c.field, err)
		}
	}
}

// Run refuses bad options, and names the build when a binary is missing,
// starting nothing.
func TestRunRefuses(t *testing.T) {
	o := DefaultOptions()
	o.Rounds = 0
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "Rounds") {
		t.Errorf("Run with 0 rounds: %v", err)
	}
	o = DefaultOptions()
	o.Bin = t.TempDir()
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "dispatchflow-dev") || !strings.Contains(err.Error(), "make bench") {
		t.Errorf("Run without binaries: %v, want the missing server binary and make bench named", err)
	}
}

func TestScaleSteps(t *testing.T) {
	for n, want := range map[int][]int{
		50000: {5000, 25000, 50000},
		1000:  {100, 500, 1000},
		15:    {1, 7, 15},
		0:     {0, 0, 0},
	} {
		if got := scaleSteps(n); !slices.Equal(got, want) {
			t.Errorf("scaleSteps(%d) = %v, want %v", n, got, want)
		}
	}
}
