package bench

import (
	"context"
	"strings"
	"time"
)

// measureScale opens Options.Scale messages of ours that wait on their tracking
// windows, in the steps of scaleSteps, and after each step bursts 200 full
// lifecycles at saturation.
func (s *stage) measureScale(ctx context.Context) ([]ScaleStep, error) {
	sys, err := s.startSystem(ctx, "dispatchflow-scale", "dispatchflow", "bench-scale", nil, "serve")
	if err != nil {
		return nil, err
	}
	defer sys.p.Stop()
	var steps []ScaleStep
	opened := 0
	for _, target := range scaleSteps(s.o.Scale) {
		s.logf("scale: opening messages up to %d", target)
		err := parallel(target-opened, s.o.Concurrency, func(int) error {
			_, err := s.drv.send(ctx, sys.api, "s", "t")
			return err
		})
		if err != nil {
			return nil, err
		}
		opened = target
		start := time.Now()
		burst, err := s.drv.runClosed(ctx, []string{sys.api}, 200, s.o.Concurrency)
		if err != nil {
			return nil, err
		}
		tp := 200 / time.Since(start).Seconds()
		var lat []time.Duration
		for _, l := range burst {
			lat = append(lat, l.processed, l.delivered)
		}
		step := ScaleStep{Open: opened + 200, Throughput: tp, P50: Percentile(lat, 50), P99: Percentile(lat, 99), WorkerRSS: sys.p.RSS()}
		steps = append(steps, step)
		s.logf("scale: %s", strings.TrimSuffix(strings.ReplaceAll(step.row(), "\t", " |"), "\n"))
		opened += 200
	}
	return steps, nil
}

// scaleSteps are the open messages the scale run reaches, step by step: a tenth
// of n, half of n, n.
func scaleSteps(n int) []int {
	var s []int
	for _, f := range []float64{0.1, 0.5, 1} {
		s = append(s, int(float64(n)*f))
	}
	return s
}
