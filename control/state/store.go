package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xlbproject/xlb/internal/atomicfile"
)

// fileVersion is bumped when the file's meaning changes incompatibly.
const fileVersion = 1

// File is what the state file holds.
type File struct {
	Version int `json:"version"`
	// Base is the desired state derived from the configuration file at the
	// last load or reload; Rebase needs it to tell the file's changes from
	// the operator's.
	Base Desired `json:"base"`
	// Desired is the acknowledged desired state: Base plus API changes.
	Desired Desired `json:"desired"`
}

// Store reads and writes the state file atomically.
type Store struct {
	path string
	// beforeRename, when set (tests only), runs after the temporary file is
	// written and synced and before it is renamed into place: the window a
	// crash test aims at.
	beforeRename func(tmp string)
}

// NewStore returns a store for the state file at path. Its directory is
// created (0700) when missing.
func NewStore(path string) *Store { return &Store{path: path} }

// Path is the state file's path.
func (s *Store) Path() string { return s.path }

// Load reads the state file. It returns an error wrapping os.ErrNotExist
// when there is none yet (first start).
func (s *Store) Load() (File, error) {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return File{}, fmt.Errorf("read state: %w", err)
	}
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return File{}, fmt.Errorf("parse state %s: %w (move it away to start from the config file alone)", s.path, err)
	}
	if f.Version != fileVersion {
		return File{}, fmt.Errorf("parse state %s: version %d, this daemon reads version %d", s.path, f.Version, fileVersion)
	}
	return f, nil
}

// Save replaces the state file atomically and durably: temporary file in the
// same directory, fsync, rename, fsync of the directory. When Save returns
// nil the new state survives a crash or power loss; when it fails or the
// process dies inside it, the previous file is intact.
func (s *Store) Save(f File) error {
	f.Version = fileVersion
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := atomicfile.Write(s.path, append(data, '\n'), atomicfile.Options{BeforeRename: s.beforeRename}); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// RemoveTemps deletes temporary files left by a crash inside Save. They are
// harmless (Load never reads them) but would accumulate.
func (s *Store) RemoveTemps() error {
	matches, err := filepath.Glob(atomicfile.TempPattern(s.path))
	if err != nil {
		return fmt.Errorf("list temp states: %w", err)
	}
	var errs []error
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove temp state: %w", err))
		}
	}
	return errors.Join(errs...)
}
