package main

import (
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress bars appear on a terminal only, and only for a step that has
// run longer than progressDelay, so short runs and pipes stay quiet.
const (
	progressDelay = time.Second
	progressTick  = 200 * time.Millisecond
)

// progress draws a bar (or a spinner, for steps without a count) for the
// step in hand. Steps are told to it as update(step, done, total); a new
// step name finishes the previous bar.
type progress struct {
	env   *Env
	delay time.Duration
	mu    sync.Mutex
	step  string
	start time.Time // when the step began
	gen   int
	done  int
	tot   int
	bar   *progressbar.ProgressBar
}

// newProgress returns the callback long work reports to (models.Train's
// Progress takes it), and a function to call when the work is over. Off a
// terminal the callback is nil (callers check) and stop does nothing.
func newProgress(env *Env) (func(step string, done, total int), func()) {
	return newProgressAfter(env, progressDelay)
}

func newProgressAfter(env *Env, delay time.Duration) (func(step string, done, total int), func()) {
	if !env.IsTerminal {
		return nil, func() {}
	}
	p := &progress{env: env, delay: delay}
	return p.update, func() { p.update("", 0, 0) }
}

func (p *progress) update(step string, done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.tot = done, total
	if step == p.step {
		if p.bar != nil && total > 1 {
			p.bar.Set(min(done, total))
		}
		return
	}
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
	p.step = step
	p.start = time.Now()
	p.gen++
	if step == "" {
		return
	}
	gen := p.gen
	go func() {
		time.Sleep(p.delay)
		for {
			p.mu.Lock()
			if p.gen != gen {
				p.mu.Unlock()
				return
			}
			// The step's own time, in the description: the bar's clock
			// would start at the bar, a second late.
			desc := p.step + " (" + time.Since(p.start).Round(time.Second).String() + ")"
			if p.bar == nil {
				opts := []progressbar.Option{progressbar.OptionSetWriter(p.env.Stderr),
					progressbar.OptionSetDescription(desc), progressbar.OptionSetPredictTime(false), progressbar.OptionSetElapsedTime(false),
					progressbar.OptionClearOnFinish(), progressbar.OptionSpinnerType(14)}
				max := -1 // a spinner
				if p.tot > 1 {
					max = p.tot
					opts = append(opts, progressbar.OptionShowCount())
				}
				p.bar = progressbar.NewOptions(max, opts...)
			}
			p.bar.Describe(desc)
			if p.tot > 1 {
				p.bar.Set(min(p.done, p.tot))
			} else {
				p.bar.Add(0) // advance the spinner
			}
			p.mu.Unlock()
			time.Sleep(progressTick)
		}
	}()
}
