// Package atomicfile replaces a file atomically and durably: a reader sees
// the old content or the new, never a mix, and once Write returns nil the
// new content survives a crash or power loss.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Options tune Write. The zero value is what production uses.
type Options struct {
	// BeforeRename, when set, runs with the temporary file's path just
	// before it is renamed into place (tests crash there).
	BeforeRename func(tmp string)
}

// Write replaces path with data: a temporary file in the same directory
// (mode 0600, created with the directory 0700 if missing), fsync, rename,
// fsync of the directory. When it fails, or the process dies inside it, the
// previous file is intact; a temporary file may remain (see TempPattern).
func Write(path string, data []byte, opts Options) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory of %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write temporary file for %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("sync temporary file for %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close temporary file for %s: %w", path, err)
	}
	if opts.BeforeRename != nil {
		opts.BeforeRename(tmp.Name())
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s into place: %w", path, err)
	}
	// The rename is durable only once the directory entry is on disk.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory of %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}
	return nil
}

// TempPattern is the glob of the temporary files Write makes for path, to
// clean up after a crash.
func TempPattern(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
}
