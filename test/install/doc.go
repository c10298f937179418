// Package install tests what an operator installs: the file layout of
// `make install` (scripts/install.sh), the Debian package built from it, the
// systemd units (systemd-analyze verify), and that each unit's user and
// capability set are enough for its process to do its job, and no more —
// run for real under setpriv with the unit's own settings, in network
// namespaces the tests create.
package install
