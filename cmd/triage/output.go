package main

import (
	"io"

	"github.com/triage-router/triage/datasets/safefile"
)

// output is where a command writes its result: a file that appears whole
// or not at all, or stdout when no path (or "-") is given.
type output struct {
	io.Writer
	f *safefile.File
}

func openOutput(env *Env, path string) (*output, error) {
	if path == "" || path == "-" {
		return &output{Writer: env.Stdout}, nil
	}
	f, err := safefile.Create(path)
	if err != nil {
		return nil, err
	}
	return &output{Writer: f, f: f}, nil
}

// Commit publishes the file; Abort discards it. Call Abort in a defer and
// Commit on success: Abort after Commit does nothing.
func (o *output) Commit() error {
	if o.f == nil {
		return nil
	}
	return o.f.Commit()
}

func (o *output) Abort() {
	if o.f != nil {
		o.f.Abort()
	}
}
