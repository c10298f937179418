package strictyaml

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ReadFile reads the configuration file at path. Its errors say what is
// wrong with the path in an operator's words ("config file /etc/xlb/x.yaml
// does not exist", "… is a directory, not a config file") and unwrap to
// the os error, so errors.Is(err, fs.ErrNotExist) still holds.
func ReadFile(path string) ([]byte, error) { return ReadNamed("config file", path) }

// ReadNamed is ReadFile for a file a configuration names, called what
// ("credentials file") in its errors.
func ReadNamed(what, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		return data, nil
	}
	var msg string
	switch fi, serr := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist):
		msg = fmt.Sprintf("%s %s does not exist", what, path)
	case serr == nil && fi.IsDir():
		msg = fmt.Sprintf("%s is a directory, not a %s", path, what)
	case errors.Is(err, fs.ErrPermission):
		msg = fmt.Sprintf("cannot read %s %s: permission denied (run as root, or as the service's user)", what, path)
	default:
		msg = fmt.Sprintf("cannot read %s %s: %v", what, path, errors.Unwrap(err))
	}
	return nil, readError{msg: msg, err: err}
}

type readError struct {
	msg string
	err error
}

func (e readError) Error() string { return e.msg }
func (e readError) Unwrap() error { return e.err }
