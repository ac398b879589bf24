// Package pathonce keeps a path from appearing twice in an error message.
// The os package names the path in its errors ("read log.jsonl: is a
// directory"), and the caller wrapping one with its own context and the
// path ("read log.jsonl: %w") printed "read log.jsonl: read log.jsonl: is
// a directory". Inner gives the caller the error without the path, so
// that the message keeps the caller's context and the path once.
package pathonce

import "io/fs"

// Inner is err without its path when err is an *fs.PathError naming path
// (the error the os package returned, not one wrapped further: a wrapped
// one carries context of its own, which stays); otherwise err as it is.
// errors.Is still sees the cause (fs.ErrPermission, syscall.EISDIR).
func Inner(path string, err error) error {
	if pe, ok := err.(*fs.PathError); ok && pe.Path == path {
		return pe.Err
	}
	return err
}
