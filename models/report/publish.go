package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/triage-router/triage/datasets/safefile"
)

// errNoExchange says two folders cannot be swapped in one step here.
var errNoExchange = errors.New("cannot swap two folders in one step")

// errMountPoint says a report folder is a mount point, which cannot be
// swapped with another folder.
var errMountPoint = errors.New("a report replaces its folder whole, which cannot be done to a mount point")

// stagePrefix named a report's staging folder inside the report folder,
// where earlier versions staged; such folders left by killed runs are
// still removed.
const stagePrefix = ".report-new-"

// sideStagePrefix names the folder beside dir that a report into dir is
// written in, and that holds the old report once the two are swapped.
func sideStagePrefix(dir string) string { return "." + filepath.Base(dir) + ".report-new-" }

// syncDir fsyncs a folder; tests replace it to see which are synced.
var syncDir = safefile.SyncDir

// publishStep is called at each step of writeStaged that changes what is
// on disk; tests replace it to look at the folder between the steps, as
// a reader or a crash at that point would find it.
var publishStep = func(step string) {}

// CheckFolder refuses, before any work, a report folder that exists and
// that writeStaged cannot replace: one that holds the working folder (the
// swap would leave this process, and a shell that ran it, in a removed
// folder). The path is taken through symbolic links, as writeStaged
// takes it. A folder that does not exist yet is fine.
func CheckFolder(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	if err != nil {
		return nil // no folder to replace (or below a file): the write says what is wrong
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil // nothing to protect
	}
	if w, err := filepath.EvalSymlinks(wd); err == nil {
		wd = w
	}
	if wd == real || strings.HasPrefix(wd, real+string(filepath.Separator)) || filepath.Dir(real) == real {
		return fmt.Errorf("report %s holds the working folder, and a report replaces its folder whole; write it into a folder of its own, e.g. -o %s", dir, filepath.Join(dir, "report"))
	}
	if mountPoint(real) {
		return mountPointError(dir)
	}
	// One below it is refused by carry, after the work: said here first.
	var below error
	filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == real {
			return nil
		}
		if isMountPoint(p) {
			below = fmt.Errorf("report %s holds %s, a mount point, which a report folder cannot keep (removing the old report would empty it); unmount it or mount it outside the report folder", dir, p)
			return filepath.SkipAll
		}
		return nil
	})
	return below
}

// isMountPoint is mountPoint; tests replace it, as they cannot mount.
var isMountPoint = mountPoint

// mountPointError refuses a report folder that is a mount point (a
// container's volume, a tmpfs): the new report is written beside it, on
// the parent's filesystem, and a mount point cannot be renamed or swapped
// (EBUSY, EXDEV), so the run would fail after all its work.
func mountPointError(dir string) error {
	return fmt.Errorf("report %s is a mount point, and %w; write it into a folder below it, e.g. -o %s", dir, errMountPoint, filepath.Join(dir, "report"))
}

// writeStaged has fill write a report's files into a new folder beside
// dir, carries into it what else dir holds, and swaps it with dir in one
// step (renameat2 RENAME_EXCHANGE; a rename when dir does not exist yet).
//
// Moving the files into dir one by one let a kill during the moves, or a
// reader during them (a browser, a CI job publishing the folder), see old
// and new files mixed. With the swap, dir holds the old report or the
// new one, whole, at every instant and after a crash at any point. The
// old one, beside dir after the swap, is removed; a run killed before
// that leaves it (or its unfinished stage) in a folder named
// sideStagePrefix and digits, which the next report into dir removes, so
// old versions do not pile up.
//
// Other files in dir (a user's notes, section folders of an earlier
// report that the new one does not write) stay: they are hard-linked
// (copied where no link can be made) into the new folder before the
// swap, and an entry made in dir between that and the swap is moved over
// after it. A symbolic link dir is followed: the folder it names is
// replaced and the link kept.
//
// Where folders cannot be swapped (not Linux; NFS), an existing dir is
// not replaced and the error says so; a new one is written.
func writeStaged(ctx context.Context, dir string, fill func(stage string) error) error {
	if err := CheckFolder(dir); err != nil {
		return err
	}
	old, err := os.Stat(dir)
	exists := err == nil
	switch {
	case exists && !old.IsDir():
		return fmt.Errorf("report %s: it is %s, not a folder", dir, safefile.KindOf(old.Mode()))
	case !exists && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("report %s: %w", dir, err)
	case exists:
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return fmt.Errorf("report %s: %w", dir, err)
		}
		dir = real
	}
	parent := filepath.Dir(filepath.Clean(dir))
	made, err := mkdirAll(parent)
	if err != nil {
		return err
	}
	// Folders of runs killed before they finished (kill -9, the OOM
	// killer): a partial report, or an old one they had swapped out. The
	// lock on this run's keeps a concurrent run from taking it for one.
	prefix := sideStagePrefix(dir)
	safefile.RemoveStaleDirs(parent, prefix)
	if exists {
		safefile.RemoveStaleDirs(dir, stagePrefix)
	}
	stage, err := mkdirStage(parent, prefix)
	if err != nil {
		return err
	}
	// After the swap, stage holds the old report: removed either way.
	defer removeTree(stage)
	if d, err := os.Open(stage); err == nil {
		safefile.TryLock(d)
		defer d.Close() // before the RemoveAll: defers run last first
	}
	if exists {
		// The new folder takes the old one's owner, group and
		// permissions, set-group-ID bit included, as files replaced by
		// safefile keep theirs: a folder a web server reads through its
		// group must stay its group's. While it is written, its owner
		// may write it: a read-only report folder (0555) is replaced
		// whole like any other, as safefile replaces a read-only file,
		// and only took its mode to fail after all the work.
		if err := keepMode(stage, old, 0o700); err != nil {
			return fmt.Errorf("report %s: %w", dir, err)
		}
	}
	if err := fill(stage); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if exists {
		if err := carry(dir, stage); err != nil {
			return fmt.Errorf("report %s: keep the folder's other files: %w", dir, err)
		}
		if err := os.Chmod(stage, folderMode(old)); err != nil {
			return fmt.Errorf("report %s: %w", dir, err)
		}
	}
	// Every entry of the new folder is in its folder's directory before
	// the swap (each file's own data was synced as it was written).
	if err := syncTree(stage); err != nil {
		return fmt.Errorf("report %s: %w", dir, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	publishStep("written")
	if err := swapIn(stage, dir, exists); err != nil {
		return err
	}
	publishStep("swapped")
	// The swap changed parent's entries, and each folder made for the
	// report is an entry of its own parent: synced, or a crash soon after
	// the command returned could undo them.
	dirty := map[string]bool{parent: true}
	for _, d := range made {
		dirty[filepath.Dir(d)] = true
	}
	for _, d := range slices.Sorted(maps.Keys(dirty)) {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("report %s: %w", dir, err)
		}
	}
	if exists {
		// Not an error: the report is in place, and what is left is
		// removed with the old one.
		salvage(stage, dir)
	}
	return nil
}

// swapIn puts the folder stage at dir: a rename where dir did not exist,
// a swap where it did (stage then holds the old folder).
func swapIn(stage, dir string, exists bool) error {
	if !exists {
		err := os.Rename(stage, dir)
		if err == nil {
			return nil
		}
		if _, serr := os.Stat(dir); serr != nil {
			return fmt.Errorf("report: move the report to %s: %w", dir, err)
		}
		// A concurrent run made dir meanwhile: replace its report.
	}
	if err := exchange(stage, dir); err != nil {
		if errors.Is(err, errMountPoint) {
			return err
		}
		if errors.Is(err, errNoExchange) {
			return fmt.Errorf("report %s: %w; the report was not replaced: remove the folder first or write to a new one (another -o)", dir, err)
		}
		return fmt.Errorf("report: swap the new report with %s: %w", dir, err)
	}
	return nil
}

// mkdirAll makes dir and its missing parents, and returns the folders it
// made.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || filepath.Dir(p) == p {
			break
		}
		missing = append(missing, p)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create report folder: %w", err)
	}
	return missing, nil
}

// mkdirStage makes a new folder named prefix and digits in dir, with
// the permissions a new report folder always had (0755 less the umask;
// os.MkdirTemp's are 0700, and this one becomes the report folder).
func mkdirStage(dir, prefix string) (string, error) {
	for try := 0; ; try++ {
		p := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10))
		err := os.Mkdir(p, 0o755)
		if os.IsExist(err) && try < 100 {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("create report folder: %w", err)
		}
		return p, nil
	}
}

// carry puts into to what from holds and to does not: folders made with
// the same permissions, files hard-linked (copied where that fails:
// another filesystem below, a file of another user), symbolic links
// made again.
func carry(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		src, dst := filepath.Join(from, e.Name()), filepath.Join(to, e.Name())
		fi, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
		if fi.IsDir() && isMountPoint(src) {
			// The swap would take the mount along to the old folder, whose
			// removal then empties the mounted filesystem.
			return fmt.Errorf("%s is a mount point, which a report folder cannot keep (removing the old report would empty it); unmount it or mount it outside the report folder", src)
		}
		have, err := os.Lstat(dst)
		switch {
		case err == nil && have.IsDir() && fi.IsDir():
			if err := carry(src, dst); err != nil {
				return err
			}
			continue
		case err == nil:
			continue // the new report's file
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		switch m := fi.Mode(); {
		case m.IsDir():
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
			if err := carry(src, dst); err != nil {
				return err
			}
			if err := keepMode(dst, fi, 0); err != nil {
				return err
			}
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
		case m.IsRegular():
			if os.Link(src, dst) != nil {
				if err := copyFile(src, dst, m.Perm()); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("%s is %s, which a report folder cannot keep; move it out of the folder", src, safefile.KindOf(m))
		}
	}
	return nil
}

// keepMode gives the folder dir the owner and group of the folder old
// describes, as far as this process may (root: both; another user: a
// group it is in; else they stay its own, as before), then old's
// permissions with its set-group-ID and sticky bits, and the bits of
// more. The owner comes first: a chown clears the set-group-ID bit.
func keepMode(dir string, old fs.FileInfo, more fs.FileMode) error {
	keepOwner(dir, old)
	return os.Chmod(dir, folderMode(old)|more)
}

// removeTree removes dir and what it holds, read-only folders too (a
// report folder 0555, a user's folder carried into the new report), which
// os.RemoveAll cannot empty unless the process is root: the old report
// would stay beside the folder after each run. Errors are ignored, as the
// removal of a stage always was: what stays, the next run removes.
func removeTree(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if fi, err := d.Info(); err == nil && fi.Mode().Perm()&0o700 != 0o700 {
				os.Chmod(p, fi.Mode()|0o700)
			}
		}
		return nil
	})
	os.RemoveAll(dir)
}

// folderMode is the mode a folder that replaces old takes.
func folderMode(old fs.FileInfo) fs.FileMode {
	return old.Mode() & (fs.ModePerm | fs.ModeSetgid | fs.ModeSticky)
}

// copyFile copies src to dst, a new file, synced, with permissions perm.
func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// syncTree syncs dir and every folder below it.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return syncDir(p)
	})
}

// salvage moves into to what from holds and to does not: after the swap,
// from is the old folder, and such an entry was made in it after carry
// looked (a file a user saved there meanwhile). Errors are ignored: this
// narrows a window, it cannot close it.
func salvage(from, to string) {
	entries, err := os.ReadDir(from)
	if err != nil {
		return
	}
	for _, e := range entries {
		src, dst := filepath.Join(from, e.Name()), filepath.Join(to, e.Name())
		have, err := os.Lstat(dst)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			os.Rename(src, dst)
		case err == nil && have.IsDir() && e.IsDir():
			salvage(src, dst)
		}
	}
}
