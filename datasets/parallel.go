package datasets

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync"
)

// Position says where a record was read: its line number and the byte
// offset just past the line, e.g. to estimate how many records a file
// holds from its size.
type Position struct {
	Line int
	End  int64
}

// Batch sizes of EachFileParallel: a batch is handed to a worker when it
// holds parallelBatchLines lines or parallelBatchBytes bytes, whichever
// comes first, so one batch costs a worker about a millisecond and the
// channels' overhead stays small beside it.
const (
	parallelBatchLines = 512
	parallelBatchBytes = 1 << 20
)

// EachFileParallel is EachFile with the JSON decoding and validation, and
// the caller's work on each record, spread over workers goroutines (0
// means GOMAXPROCS). Each worker calls newWork once and passes its records
// to the function that returns, which may therefore keep scratch state (a
// feature extractor, say). fn then gets each record's result on the
// calling goroutine, in file order, for exactly the records EachFile would
// have passed: the same bad lines are reported (file:line:field) or, with
// SkipBad, counted and skipped, and the same repeated ids are rejected,
// since that check runs in file order too. So a record whose id repeats
// an earlier one has been worked on before it is dropped: work must have
// no effect beyond its result. Memory stays bounded: at most a few
// batches per worker are in flight. It returns the number of bad lines
// skipped.
func EachFileParallel[T any](path string, opts ReadOptions, workers int, newWork func() func(*Record) T, fn func(Position, T) error) (int, error) {
	in, closeIn, err := openLog(path, opts.Stdin)
	if err != nil {
		return 0, err
	}
	defer closeIn()
	return eachParallel(NewReader(in, path, opts), workers, newWork, fn)
}

func eachParallel[T any](rd *Reader, workers int, newWork func() func(*Record) T, fn func(Position, T) error) (int, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if workers == 1 {
		work := newWork()
		for {
			rec, err := rd.Next()
			if err == io.EOF {
				return rd.Skipped(), nil
			}
			if err != nil {
				return rd.Skipped(), err
			}
			if err := fn(Position{Line: rd.Line(), End: rd.off}, work(&rec)); err != nil {
				return rd.Skipped(), err
			}
		}
	}
	p := pipeline[T]{rd: rd, quit: make(chan struct{})}
	return p.run(workers, newWork, fn)
}

// batch is a run of consecutive non-blank lines and, once a worker has
// been through it, what each line turned into.
type batch[T any] struct {
	data  []byte // the lines' bytes, end to end
	ends  []int  // line k is data[ends[k-1]:ends[k]]
	pos   []Position
	errs  []error  // a read error of line k (too long), or after work its decode error
	ids   []string // line k's record id, for the repeat check
	out   []T
	fatal error // a read error that ends the file after these lines
	done  chan struct{}
}

type pipeline[T any] struct {
	rd   *Reader
	quit chan struct{} // closed when the consumer stops early
}

func (p *pipeline[T]) run(workers int, newWork func() func(*Record) T, fn func(Position, T) error) (int, error) {
	todo := make(chan *batch[T], workers)
	// order holds every batch in file order; its capacity bounds how far
	// the reader runs ahead of fn.
	order := make(chan *batch[T], 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work := newWork()
			for b := range todo {
				p.process(b, work)
				close(b.done)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(todo)
		p.read(todo, order)
	}()
	defer func() {
		close(p.quit)
		// Let the reader and the workers finish what they hold.
		for b := range order {
			<-b.done
		}
		wg.Wait()
	}()

	rd := p.rd
	for b := range order {
		<-b.done
		for k := range b.out {
			err := b.errs[k]
			if err == nil {
				err = rd.claimID(b.ids[k], b.pos[k].Line)
			}
			if err != nil {
				if !rd.opts.SkipBad {
					return rd.skipped, err
				}
				rd.skip(err)
				continue
			}
			if err := fn(b.pos[k], b.out[k]); err != nil {
				return rd.skipped, err
			}
		}
		if b.fatal != nil {
			return rd.skipped, b.fatal
		}
	}
	return rd.skipped, nil
}

// read splits the file into batches and sends each to a worker and, in
// file order, to the consumer.
func (p *pipeline[T]) read(todo, order chan<- *batch[T]) {
	rd := p.rd
	b := &batch[T]{done: make(chan struct{})}
	last := 0 // bytes in the last batch: the next one's starting capacity
	send := func() bool {
		last = len(b.data)
		select {
		case order <- b:
		case <-p.quit:
			return false
		}
		select {
		case todo <- b:
		case <-p.quit:
			close(b.done) // never worked on; the consumer has stopped
			return false
		}
		b = &batch[T]{done: make(chan struct{}), data: make([]byte, 0, last)}
		return true
	}
	for {
		line, err := rd.readLine()
		if err == io.EOF {
			if len(b.ends) > 0 || b.fatal != nil {
				send()
			}
			return
		}
		var le *LineError
		if err != nil && !errors.As(err, &le) {
			b.fatal = err
			send()
			return
		}
		if err == nil && len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		b.data = append(b.data, line...)
		b.ends = append(b.ends, len(b.data))
		b.pos = append(b.pos, Position{Line: rd.line, End: rd.off})
		b.errs = append(b.errs, err)
		if len(b.ends) >= parallelBatchLines || len(b.data) >= parallelBatchBytes {
			if !send() {
				return
			}
		}
	}
}

// process decodes a batch's lines and runs work on the valid records.
func (p *pipeline[T]) process(b *batch[T], work func(*Record) T) {
	b.out = make([]T, len(b.ends))
	b.ids = make([]string, len(b.ends))
	start := 0
	for k, end := range b.ends {
		line := b.data[start:end]
		start = end
		if b.errs[k] != nil {
			continue
		}
		rec, err := decodeLine(p.rd.name, b.pos[k].Line, line, p.rd.opts)
		if err != nil {
			b.errs[k] = err
			continue
		}
		b.ids[k] = rec.ID
		b.out[k] = work(&rec)
	}
	// The lines are decoded; drop their bytes before the batch waits in
	// the queue.
	b.data = nil
}
