package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xlbproject/xlb/test/topo"
)

// Proc is a process the fleet started in a host's namespace, logging to
// a file in the fleet's directory.
type Proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// start runs bin in h's namespace. Each process gets its own process
// group, so a Ctrl-C on the terminal reaches only the driver, which then
// stops the fleet in order.
func (f *Fleet) start(h *topo.Host, name, bin string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, Log: filepath.Join(f.dir, name+".log"), done: make(chan struct{})}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	defer logf.Close()
	p.cmd = h.Command(context.Background(), bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, h.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	return p, nil
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited says whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Signal sends sig to the process (nothing once it has exited).
func (p *Proc) Signal(sig syscall.Signal) error {
	if done, _ := p.Exited(); done {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	return nil
}

// Stop sends sig and waits up to grace for the exit, then kills.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) error {
	_ = p.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop on %v within %v: killed", p.Name, sig, grace)
	}
}

// Tail is the end of the process's log.
func (p *Proc) Tail(lines int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// failIfExited returns the process's log when it is gone, for waits that
// would otherwise time out on a process that died at start.
func (p *Proc) failIfExited() error {
	if done, err := p.Exited(); done {
		return fmt.Errorf("%s exited (%v): %s", p.Name, err, p.Tail(15))
	}
	return nil
}
