package serve

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultWatchDebounce is how long WatchModel waits after the last event
// before it reloads: a copy or an editor's save is a burst of events.
const DefaultWatchDebounce = 250 * time.Millisecond

// Watcher reloads a model when its file changes. Stop it with Close.
type Watcher struct {
	w    *fsnotify.Watcher
	done chan struct{}
	wg   sync.WaitGroup
}

// WatchModel calls reload after the file at path is written, or a file is
// created at or renamed onto path, or it is removed or renamed away, once
// per burst of events (debounce; 0 means DefaultWatchDebounce). A removal
// reloads too so that it is not silent: the reload fails, says the file is
// gone, and the loaded model keeps serving; an editor's save (rename away,
// then create) is one burst, and reloads the new file. It watches the file's directory, not the file:
// a deploy that renames a new file over the old one replaces the inode a
// file watch would follow. When path is a symbolic link, the file it
// points to is watched too (and its directory): 'triage retrain -o' and
// every other writer through the link replace the link's target, not the
// link, so a watch of the link's name alone never saw a promotion. So is
// every symbolic link on the path, in its own directory: a deploy that
// repoints a folder link (current -> releases/8) changes nothing in the
// folders watched before. The links are resolved again after each burst,
// so repointing one moves the watch. reload should validate before it
// swaps (Server.Reload does); log gets watcher errors.
func WatchModel(path string, debounce time.Duration, reload func(), log *slog.Logger) (*Watcher, error) {
	if debounce <= 0 {
		debounce = DefaultWatchDebounce
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("watch model: %w", err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch model: %w", err)
	}
	if err := fw.Add(filepath.Dir(abs)); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watch model directory %s: %w", filepath.Dir(abs), err)
	}
	dirs := map[string]bool{filepath.Dir(abs): true}
	watch := func(d string) bool {
		if dirs[d] {
			return true
		}
		if err := fw.Add(d); err != nil {
			log.Warn("model watch: a directory on the model's path", "dir", d, "err", err)
			return false
		}
		dirs[d] = true
		return true
	}
	// names are the paths whose change reloads besides abs: the file abs
	// resolves to, and every symbolic link on the way (a folder link a
	// deploy repoints, current -> releases/8), each watched in its
	// directory.
	names := map[string]bool{}
	resolve := func() {
		clear(names)
		for _, l := range linksOn(abs) {
			if watch(filepath.Dir(l)) {
				names[l] = true
			}
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs && watch(filepath.Dir(real)) {
			names[real] = true
		}
	}
	resolve()
	w := &Watcher{w: fw, done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-w.done:
				timer.Stop()
				return
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				// A file renamed onto the path arrives as Create.
				name := filepath.Clean(ev.Name)
				if (name != abs && !names[name]) || !ev.Has(fsnotify.Write|fsnotify.Create|fsnotify.Remove|fsnotify.Rename) {
					continue
				}
				timer.Reset(debounce)
			case err, ok := <-fw.Errors:
				if !ok {
					return
				}
				log.Warn("model watch", "err", err)
			case <-timer.C:
				// A link may have been repointed, or made.
				resolve()
				reload()
			}
		}
	}()
	return w, nil
}

// Close stops watching and waits for a reload in progress.
func (w *Watcher) Close() error {
	close(w.done)
	err := w.w.Close()
	w.wg.Wait()
	return err
}

// linksOn lists the symbolic links on path: each leading part of it, from
// the root down to path itself, that is a link.
func linksOn(path string) []string {
	var links []string
	vol := filepath.VolumeName(path)
	p := vol + string(filepath.Separator)
	for _, part := range strings.Split(path[len(p):], string(filepath.Separator)) {
		if part == "" {
			continue
		}
		p = filepath.Join(p, part)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			links = append(links, p)
		}
	}
	return links
}
