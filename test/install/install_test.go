package install

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/test/topo"
)

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	return root
}

// buildXLB compiles cmd/xlb once per test into a temp dir.
func buildXLB(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xlb")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/xlb")
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// install runs scripts/install.sh with the given layout (and env, extra
// VAR=value settings).
func install(t *testing.T, bin, destdir, prefix, unitdir string, env ...string) {
	t.Helper()
	cmd := exec.Command("bash", "scripts/install.sh")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(append(os.Environ(), "BIN="+bin, "DESTDIR="+destdir, "PREFIX="+prefix, "UNITDIR="+unitdir), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "install.sh: %s", out)
}

// files lists the regular files under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		got = append(got, "/"+rel)
		return err
	}))
	slices.Sort(got)
	return got
}

// wantLayout is what an installation under PREFIX=/usr holds, docs aside.
var wantLayout = []string{
	"/etc/xlb/dns.yaml.example",
	"/etc/xlb/proxy.yaml.example",
	"/etc/xlb/xlb.yaml.example",
	"/lib/systemd/system/xlb-daemon.service",
	"/lib/systemd/system/xlb-decap@.service",
	"/lib/systemd/system/xlb-dns.service",
	"/lib/systemd/system/xlb-proxy.service",
	"/lib/systemd/sysusers.d/xlb.conf",
	"/usr/bin/xlb",
	"/usr/share/bash-completion/completions/xlb",
	"/usr/share/doc/xlb/README.md",
	"/usr/share/fish/vendor_completions.d/xlb.fish",
	"/usr/share/xlb/alerts/xlb-alerts.yaml",
	"/usr/share/xlb/dashboards/xlb-l7.json",
	"/usr/share/xlb/dashboards/xlb.json",
	"/usr/share/zsh/vendor-completions/_xlb",
}

func withoutDocs(paths []string) []string {
	return slices.DeleteFunc(slices.Clone(paths), func(p string) bool {
		return strings.HasPrefix(p, "/usr/share/doc/xlb/docs/")
	})
}

func TestInstallLayout(t *testing.T) {
	bin := buildXLB(t)
	dest := t.TempDir()
	install(t, bin, dest, "/usr", "/lib/systemd/system")

	got := files(t, dest)
	assert.Equal(t, wantLayout, withoutDocs(got))
	assert.Contains(t, got, "/usr/share/doc/xlb/docs/cli.md")

	for _, u := range []string{"xlb-daemon.service", "xlb-dns.service", "xlb-proxy.service", "xlb-decap@.service"} {
		b, err := os.ReadFile(filepath.Join(dest, "lib/systemd/system", u))
		require.NoError(t, err)
		assert.Contains(t, string(b), "ExecStart=/usr/bin/xlb ", u)
	}
	for _, c := range []string{"usr/share/bash-completion/completions/xlb", "usr/share/zsh/vendor-completions/_xlb", "usr/share/fish/vendor_completions.d/xlb.fish"} {
		b, err := os.ReadFile(filepath.Join(dest, c))
		require.NoError(t, err)
		assert.Contains(t, string(b), "xlb", c)
	}
	st, err := os.Stat(filepath.Join(dest, "usr/bin/xlb"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o755), st.Mode().Perm())
}

// TestInstallCreatesGroup: the install creates the xlb group that the CLI's
// "permission denied" hint names and the xlb user the proxy's unit runs as
// (a real install does it on the host; here CREATE_USERS=1 does it under
// DESTDIR, the same systemd-sysusers call with --root), and running it
// again changes nothing. A plain DESTDIR staging creates no users. The
// install used to leave the group to a manual step.
func TestInstallCreatesGroup(t *testing.T) {
	if _, err := exec.LookPath("systemd-sysusers"); err != nil {
		t.Skip("systemd-sysusers not installed")
	}
	bin := buildXLB(t)
	dest := t.TempDir()
	install(t, bin, dest, "/usr", "/lib/systemd/system", "CREATE_USERS=1")
	group, err := os.ReadFile(filepath.Join(dest, "etc/group"))
	require.NoError(t, err)
	passwd, err := os.ReadFile(filepath.Join(dest, "etc/passwd"))
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^xlb:x:\d+:$`, string(group))
	assert.Regexp(t, `(?m)^xlb:x:\d+:\d+:[^:]*:/var/lib/xlb-proxy:/usr/sbin/nologin$`, string(passwd))

	install(t, bin, dest, "/usr", "/lib/systemd/system", "CREATE_USERS=1")
	again, err := os.ReadFile(filepath.Join(dest, "etc/group"))
	require.NoError(t, err)
	assert.Equal(t, string(group), string(again))

	staged := t.TempDir()
	install(t, bin, staged, "/usr", "/lib/systemd/system")
	assert.NoFileExists(t, filepath.Join(staged, "etc/group"))
	assert.NoFileExists(t, filepath.Join(staged, "etc/passwd"))
}

// TestPackage builds the .deb and reads it back with dpkg-deb: the same
// files as `make install`, a control file, and a postinst that creates the
// xlb user and group.
func TestPackage(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	bin := buildXLB(t)
	root := repoRoot(t)
	cmd := exec.Command("bash", "scripts/package.sh")
	cmd.Dir = root
	outDir := t.TempDir()
	cmd.Env = append(os.Environ(), "BIN="+bin, "VERSION=v1.2.3-4-gabcdef", "OUT_DIR="+outDir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "package.sh: %s", out)
	deb := strings.TrimSpace(string(out))
	require.FileExists(t, deb)
	assert.Equal(t, outDir, filepath.Dir(deb))

	field := func(name string) string {
		b, err := exec.Command("dpkg-deb", "-f", deb, name).Output()
		require.NoError(t, err)
		return strings.TrimSpace(string(b))
	}
	assert.Equal(t, "xlb", field("Package"))
	assert.Equal(t, "1.2.3-4-gabcdef", field("Version"))

	list, err := exec.Command("dpkg-deb", "--contents", deb).Output()
	require.NoError(t, err)
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		assert.Equal(t, "root/root", f[1], f[5])
		got = append(got, strings.TrimPrefix(f[5], "."))
	}
	slices.Sort(got)
	assert.Equal(t, wantLayout, withoutDocs(got))

	ctl := t.TempDir()
	require.NoError(t, exec.Command("dpkg-deb", "--control", deb, ctl).Run())
	post, err := os.ReadFile(filepath.Join(ctl, "postinst"))
	require.NoError(t, err)
	assert.Contains(t, string(post), "systemd-sysusers xlb.conf")
}

// TestUnitsVerify runs systemd-analyze verify over the installed units; it
// prints (and does not fail on) every problem, so any output is a failure.
func TestUnitsVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	bin := buildXLB(t)
	prefix := t.TempDir() // the units then name a binary that exists
	unitdir := filepath.Join(prefix, "units")
	install(t, bin, "", prefix, unitdir)
	tmpl, err := os.ReadFile(filepath.Join(unitdir, "xlb-decap@.service"))
	require.NoError(t, err)
	inst := filepath.Join(unitdir, "xlb-decap@eth0.service")
	require.NoError(t, os.WriteFile(inst, tmpl, 0o644))

	out, err := exec.Command("systemd-analyze", "verify",
		filepath.Join(unitdir, "xlb-daemon.service"), filepath.Join(unitdir, "xlb-dns.service"), filepath.Join(unitdir, "xlb-proxy.service"), inst).CombinedOutput()
	assert.NoError(t, err)
	assert.Empty(t, string(out))
}

// TestUnitsCheckBeforeReload: each unit whose process reloads on SIGHUP
// runs its binary's --check on the same file first, in ExecReload and
// ExecStartPre, so `systemctl reload` (and a start) fails on a broken file
// with its file:line instead of reporting success while the process keeps
// its old config. The check lines are run here as systemd would run them,
// with the built binary and a broken (and, for the proxy, the example)
// config in place of /etc/xlb.
func TestUnitsCheckBeforeReload(t *testing.T) {
	bin := buildXLB(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("nosuchkey: 1\n"), 0o600))
	for _, u := range []struct{ path, config, example string }{
		{"control/xlb-daemon.service", "/etc/xlb/xlb.yaml", ""},
		{"control/xlb-dns.service", "/etc/xlb/dns.yaml", "control/gslb/example.yaml"},
		{"l7/xlb-proxy.service", "/etc/xlb/proxy.yaml", "l7/example.yaml"},
	} {
		t.Run(filepath.Base(u.path), func(t *testing.T) {
			unit := unitService(t, u.path)
			reload := unit["ExecReload"]
			require.Len(t, reload, 2, "ExecReload: the check, then the signal")
			assert.Equal(t, "/bin/kill -HUP $MAINPID", reload[1])
			check := reload[0]
			assert.Contains(t, check, " --check --config "+u.config)
			assert.Contains(t, unit["ExecStartPre"], check, "a start runs the same check")

			run := func(config string) (int, string) {
				args := strings.Fields(strings.ReplaceAll(check, u.config, config))
				require.Equal(t, "/usr/bin/xlb", args[0])
				cmd := exec.Command(bin, args[1:]...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				if err == nil {
					return 0, stderr.String()
				}
				var ee *exec.ExitError
				require.ErrorAs(t, err, &ee)
				return ee.ExitCode(), stderr.String()
			}
			code, stderr := run(bad)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr, bad+`:1: unknown key "nosuchkey"`)
			if u.example != "" {
				code, stderr := run(filepath.Join(repoRoot(t), u.example))
				assert.Equal(t, 0, code, stderr)
			}
		})
	}
}

// unitService reads the [Service] section of a unit file from the source
// tree: key → values in order (a key may repeat).
func unitService(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), path))
	require.NoError(t, err)
	kv := map[string][]string{}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			in = line == "[Service]"
			continue
		}
		if !in || line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s: %q", path, line)
		kv[k] = append(kv[k], v)
	}
	return kv
}

// setprivCaps turns a unit's capability list ("CAP_BPF CAP_NET_ADMIN") into
// setpriv's form ("+bpf,+net_admin").
func setprivCaps(list string) string {
	var caps []string
	for _, c := range strings.Fields(list) {
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return strings.Join(caps, ",")
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, XDP)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
}

// TestDecapUnitCapabilities runs `xlb decap` the way its unit does — root
// with the unit's capability bounding set and nothing inheritable — on a
// veth in a test namespace: it must attach and pin. The same run with
// CAP_BPF taken out of the set must fail, which shows the set is what
// decides.
func TestDecapUnitCapabilities(t *testing.T) {
	requireRoot(t)
	bin := buildXLB(t)
	unit := unitService(t, "l4/decap/xlb-decap@.service")
	require.Len(t, unit["CapabilityBoundingSet"], 1)
	bounding := setprivCaps(unit["CapabilityBoundingSet"][0])

	tp := topo.NewT(t, topo.Options{})
	h, err := tp.AddHost(topo.HostConfig{Name: "l7"})
	require.NoError(t, err)
	pin := filepath.Join("/sys/fs/bpf", tp.Prefix()+"_decap")
	t.Cleanup(func() { _ = os.RemoveAll(pin) })

	run := func(t *testing.T, caps string) *exec.Cmd {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		cmd := h.Command(ctx, "setpriv", "--inh-caps=-all", "--bounding-set=-all,"+caps, "--",
			bin, "decap", "--iface", h.Ifname, "--pin-path", pin, "--stats-interval", "0")
		return cmd
	}

	t.Run("unit's set attaches", func(t *testing.T) {
		cmd := run(t, bounding)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		require.Eventually(t, func() bool {
			out, err := h.Run(context.Background(), "ip", "link", "show", "dev", h.Ifname)
			return err == nil && bytes.Contains(out, []byte("xdp"))
		}, 20*time.Second, 50*time.Millisecond, "decap never attached: %s", &stderr)
		require.NoError(t, cmd.Process.Signal(os.Interrupt))
		assert.NoError(t, cmd.Wait(), "stderr: %s", &stderr)
		assert.DirExists(t, pin, "pinned so a restart adopts it")
	})
	require.NoError(t, os.RemoveAll(pin))

	t.Run("without CAP_BPF it cannot", func(t *testing.T) {
		var reduced []string
		for _, c := range strings.Split(bounding, ",") {
			if c != "+bpf" {
				reduced = append(reduced, c)
			}
		}
		out, err := run(t, strings.Join(reduced, ",")).CombinedOutput()
		require.Error(t, err, "output: %s", out)
		assert.Contains(t, string(out), "xlb:")
	})
}

// TestProxyUnitCapabilities runs `xlb proxy` as its unit does — an
// unprivileged user with CAP_NET_BIND_SERVICE as its only (ambient)
// capability — listening on port 80 in a test namespace; without the
// ambient capability the bind must fail.
func TestProxyUnitCapabilities(t *testing.T) {
	requireRoot(t)
	bin := buildXLB(t)
	unit := unitService(t, "l7/xlb-proxy.service")
	require.Equal(t, []string{"xlb"}, unit["User"])
	require.Len(t, unit["AmbientCapabilities"], 1)
	ambient := setprivCaps(unit["AmbientCapabilities"][0])
	bounding := setprivCaps(unit["CapabilityBoundingSet"][0])

	tp := topo.NewT(t, topo.Options{})
	h, err := tp.AddHost(topo.HostConfig{Name: "l7"})
	require.NoError(t, err)

	// t.TempDir's parent is private to root: nobody must be able to read
	// the config, as the xlb user reads /etc/xlb.
	dir, err := os.MkdirTemp("", "xlbinst")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	// The admin socket's directory belongs to the proxy's user, as the
	// unit's RuntimeDirectory does.
	run := filepath.Join(dir, "run")
	require.NoError(t, os.Mkdir(run, 0o750))
	require.NoError(t, os.Chown(run, 65534, 65534))
	cfg := filepath.Join(dir, "proxy.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`listeners:
  - addr: "%s:80"
admin:
  addr: "%s:9901"
  socket: %q
routes:
  - name: shop
    pool: shop
pools:
  - name: shop
    servers:
      - addr: "127.0.0.1:9"
`, h.Addr4, h.Addr4, filepath.Join(run, "proxy.sock"))), 0o644))

	// The unit's user is created by the package; here the test runs as
	// nobody, which has the same (absent) privileges.
	start := func(t *testing.T, caps ...string) (*exec.Cmd, *bytes.Buffer) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		args := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, caps...)
		args = append(args, "--", bin, "proxy", "--config", cfg)
		cmd := h.Command(ctx, "setpriv", args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, &out
	}

	t.Run("ambient CAP_NET_BIND_SERVICE binds :80", func(t *testing.T) {
		cmd, out := start(t, "--inh-caps="+ambient, "--ambient-caps="+ambient, "--bounding-set=-all,"+bounding)
		client := &http.Client{Transport: &http.Transport{DialContext: h.DialContext}, Timeout: 2 * time.Second}
		require.Eventually(t, func() bool {
			resp, err := client.Get(fmt.Sprintf("http://%s:80/", h.Addr4))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return true
		}, 20*time.Second, 50*time.Millisecond, "proxy never answered on :80: %s", out)
		require.NoError(t, cmd.Process.Signal(os.Interrupt))
		_ = cmd.Wait()
	})

	t.Run("without it the bind is refused", func(t *testing.T) {
		cmd, out := start(t, "--inh-caps=-all", "--bounding-set=-all")
		err := cmd.Wait()
		require.Error(t, err)
		assert.Contains(t, out.String(), fmt.Sprintf("listen tcp %s:80: bind: permission denied", h.Addr4))
	})
}

// TestDaemonUnitCapabilities runs `xlb daemon` as its unit does — root
// with the unit's capability bounding set and nothing inheritable — on a
// veth in a test namespace: it must load, attach, pin, answer the CLI and
// run its dry-run twin for `xlb flow`. Without CAP_BPF it must fail to
// start.
func TestDaemonUnitCapabilities(t *testing.T) {
	requireRoot(t)
	bin := buildXLB(t)
	unit := unitService(t, "control/xlb-daemon.service")
	require.Len(t, unit["CapabilityBoundingSet"], 1)
	bounding := setprivCaps(unit["CapabilityBoundingSet"][0])

	tp := topo.NewT(t, topo.Options{})
	h, err := tp.AddHost(topo.HostConfig{Name: "lb"})
	require.NoError(t, err)
	dir := t.TempDir()
	pin := filepath.Join("/sys/fs/bpf", tp.Prefix()+"_daemon")
	t.Cleanup(func() { _ = os.RemoveAll(pin) })
	socket := filepath.Join(dir, "run", "xlb.sock")
	cfg := filepath.Join(dir, "xlb.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`interfaces:
  - name: %s
outer_source:
  ipv4: %s
dataplane:
  next_hop_mac: "02:00:00:00:00:01"
  conntrack_entries: 4096
api:
  socket: %s
metrics:
  listen: ""
state:
  path: %s
bpf:
  pin_path: %s
vips:
  - address: 203.0.113.10
    port: 80
    protocol: tcp
    backends:
      - address: %s
`, h.Ifname, h.Addr4, socket, filepath.Join(dir, "state.json"), pin, h.Addr4.Next())), 0o600))

	start := func(t *testing.T, caps string) (*exec.Cmd, *bytes.Buffer) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		cmd := h.Command(ctx, "setpriv", "--inh-caps=-all", "--bounding-set=-all,"+caps, "--",
			bin, "daemon", "--config", cfg, "--log-format", "json")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, &out
	}

	t.Run("unit's set runs the daemon", func(t *testing.T) {
		cmd, out := start(t, bounding)
		var status []byte
		require.Eventually(t, func() bool {
			status, err = exec.Command(bin, "status", "--socket", socket).CombinedOutput()
			return err == nil
		}, 30*time.Second, 100*time.Millisecond, "daemon never answered: %s", out)
		assert.Contains(t, string(status), h.Ifname)
		flow, err := exec.Command(bin, "flow", "198.51.100.7:40000", "203.0.113.10:80/tcp", "--socket", socket).CombinedOutput()
		assert.NoError(t, err, "xlb flow: %s", flow)
		require.NoError(t, cmd.Process.Signal(os.Interrupt))
		assert.NoError(t, cmd.Wait(), "output: %s", out)
		assert.DirExists(t, pin)
	})
	require.NoError(t, os.RemoveAll(pin))

	t.Run("without CAP_BPF it cannot start", func(t *testing.T) {
		var reduced []string
		for _, c := range strings.Split(bounding, ",") {
			if c != "+bpf" {
				reduced = append(reduced, c)
			}
		}
		cmd, out := start(t, strings.Join(reduced, ","))
		require.Error(t, cmd.Wait(), "output: %s", out)
		assert.Contains(t, out.String(), "xlb:")
	})
}

// TestVagrantfileValidates runs `vagrant validate` on vagrant/Vagrantfile
// where vagrant is installed (Debian's vagrant package); no VM is started.
func TestVagrantfileValidates(t *testing.T) {
	if _, err := exec.LookPath("vagrant"); err != nil {
		t.Skip("vagrant not installed (apt-get install vagrant)")
	}
	cmd := exec.Command("vagrant", "validate", "--ignore-provider")
	cmd.Dir = filepath.Join(repoRoot(t), "vagrant")
	cmd.Env = append(os.Environ(), "VAGRANT_HOME="+t.TempDir(), "VAGRANT_CHECKPOINT_DISABLE=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "Vagrantfile validated successfully")
}
