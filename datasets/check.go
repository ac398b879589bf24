package datasets

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/triage-router/triage/datasets/safefile"
	"github.com/triage-router/triage/internal/plural"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged is wrapped by the errors of a feedback db whose file is
// damaged (*DamageError).
var ErrDamaged = errors.New("feedback db is damaged")

// ErrEmptyDB is wrapped when the db file exists but holds no bytes.
var ErrEmptyDB = errors.New("feedback db is an empty file")

var errLockTimeout = errors.New("lock timeout")

// DamageError says what is wrong with a feedback db file and what to do.
type DamageError struct {
	Path string
	// Problems are the first problems found; Count is how many there were.
	Problems []string
	Count    int
	// Unreadable is set when not even the meta pages could be read.
	// Salvage opens a file the same way, so it cannot help, and the
	// message must not send the user to it.
	Unreadable bool
}

func (e *DamageError) Error() string {
	more := ""
	if e.Count > 1 {
		more = " (and " + plural.Count(e.Count-1, "more problem") + ")"
	}
	first := "unreadable"
	if len(e.Problems) > 0 {
		first = e.Problems[0]
	}
	if e.Unreadable {
		return fmt.Sprintf("feedback db %s is damaged: %s%s. It was not opened, and nothing in it can be read ('triage feedback salvage' cannot help): "+
			"give the file triage serve was started with, or restore a copy (GET /admin/feedback/snapshot makes one)", e.Path, first, more)
	}
	return fmt.Sprintf("feedback db %s is damaged: %s%s. It was not opened. Run 'triage feedback check --db %s' to list the damage, "+
		"and 'triage feedback salvage --db %s -o NEW.db' to copy every readable record into a new file", e.Path, first, more, e.Path, e.Path)
}

// Is makes errors.Is(err, ErrDamaged) true.
func (e *DamageError) Is(target error) bool { return target == ErrDamaged }

// emptyDBError names serve's --init by its command: the feedback
// commands (export, check, compact) print this too, and have no --init
// flag, so a bare "pass --init" sent the user to a flag they refuse.
func emptyDBError(path string) error {
	if held, _ := walHoldsData(path); held {
		return fmt.Errorf("%w: %s is 0 bytes, and a feedback db never is (a crash while it was being created, or a failed copy, leaves one), "+
			"and the feedback log %s%s beside it holds acknowledged writes of the db it was: give the right file; 'triage serve --init' would start a new, empty store only once the log is moved aside",
			ErrEmptyDB, path, path, walSuffix)
	}
	return fmt.Errorf("%w: %s is 0 bytes, and a feedback db never is (a crash while it was being created, or a failed copy, leaves one): "+
		"give the right file, or start 'triage serve' with --init to make a new, empty store in it", ErrEmptyDB, path)
}

// openChecked opens path read-only under a shared lock (waiting up to
// timeout for a writer to let go) and reads its meta pages.
func openChecked(path string, timeout time.Duration) (*os.File, *boltFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open feedback db: %w", err)
	}
	if err := sharedLock(f, timeout); err != nil {
		f.Close()
		if errors.Is(err, errLockTimeout) {
			return nil, nil, &lockedError{path: path}
		}
		return nil, nil, fmt.Errorf("lock feedback db %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open feedback db: %w", err)
	}
	if !fi.Mode().IsRegular() {
		// A folder (or device) opens fine and then fails to read as
		// "damage": 'feedback check --db DIR' reported "damage found"
		// and 'salvage' "nothing can be read" for a wrong path.
		f.Close()
		return nil, nil, fmt.Errorf("open feedback db: %s is %s, not a regular file; give --db the feedback db file triage serve was started with", path, safefile.KindOf(fi.Mode()))
	}
	if fi.Size() == 0 {
		f.Close()
		return nil, nil, emptyDBError(path)
	}
	bf, err := openBoltFile(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, nil, &DamageError{Path: path, Problems: []string{err.Error()}, Count: 1, Unreadable: true}
	}
	return f, bf, nil
}

// verifyDB checks the file at path is safe for bbolt to open: first with
// boltFile's bounds-checked walk (which bbolt's own code would fault or
// panic on), then with bbolt's Tx.Check on a read-only open. It returns a
// *DamageError listing what is wrong, or a locked error.
func verifyDB(path string, timeout time.Duration) error {
	f, bf, err := openChecked(path, timeout)
	if err != nil {
		return err
	}
	bf.walk(nil)
	f.Close()
	if bf.nProblem > 0 {
		return &DamageError{Path: path, Problems: bf.problems, Count: bf.nProblem}
	}
	problems, err := boltCheck(path, timeout)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return &DamageError{Path: path, Problems: problems, Count: len(problems)}
	}
	return nil
}

// boltCheck runs bbolt's Tx.Check on a read-only open of path. Call it
// only on a file boltFile.walk passed: Tx.Check follows page ids without
// bounds checks.
func boltCheck(path string, timeout time.Duration) ([]string, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, &lockedError{path: path}
		}
		return []string{fmt.Sprintf("bbolt refuses to open it: %v", err)}, nil
	}
	defer db.Close()
	var problems []string
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(problems) < maxProblems {
				problems = append(problems, "bbolt check: "+err.Error())
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check feedback db %s: %w", path, err)
	}
	return problems, nil
}
