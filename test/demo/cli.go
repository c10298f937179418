package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// cliTimeout bounds one xlb command (drains with --wait carry their own
// --timeout below it).
const cliTimeout = 90 * time.Second

// run runs one xlb command in the fleet's directory, where the sockets
// are (lb1/xlb.sock, l7-1/proxy.sock), so the printed command is the one
// an operator types there.
func (d *demo) run(ctx context.Context, args ...string) (stdout string, err error) {
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin.XLB, args...)
	cmd.Dir = d.f.Dir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("xlb %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// xlb prints the command, runs it and shows its output.
func (d *demo) xlb(ctx context.Context, args ...string) (string, error) {
	d.con.cmd("xlb " + strings.Join(args, " "))
	out, err := d.run(ctx, args...)
	d.con.block(out)
	if err != nil {
		d.con.block(err.Error())
	}
	return out, err
}

// xlbJSON runs a command with -o json and decodes its answer; it prints
// nothing (waits poll with it after printing the command once).
func xlbJSON[T any](ctx context.Context, d *demo, args ...string) (T, error) {
	var v T
	out, err := d.run(ctx, append(args, "-o", "json")...)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return v, fmt.Errorf("decode the answer of xlb %s: %w", strings.Join(args, " "), err)
	}
	return v, nil
}

// sock is a daemon's or proxy's socket relative to the fleet's directory.
func (d *demo) sock(path string) string {
	rel, err := filepath.Rel(d.f.Dir(), path)
	if err != nil {
		return path
	}
	return rel
}
