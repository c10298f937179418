package admin

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/xlbproject/xlb/l7/config"
)

func fileWith(servers ...config.Server) *config.Config {
	return &config.Config{Pools: []config.Pool{{Name: "checkout", Servers: servers}, {Name: "browse"}}}
}

func srv(name, addr string, weight int, drain bool) config.Server {
	return config.Server{Name: name, Addr: addr, Weight: weight, Drain: drain}
}

func spec(addr string, weight int, drain bool) *ServerSpec {
	return &ServerSpec{Addr: addr, Weight: weight, Drain: drain}
}

func TestMerge(t *testing.T) {
	c1 := srv("c1", "10.0.0.1:80", 1, false)
	c2 := srv("c2", "10.0.0.2:80", 1, false)
	tests := []struct {
		name      string
		file      *config.Config
		overrides []Override
		want      []config.Server
		kept      []Override
		notes     []Note
	}{
		{
			name: "no overrides: the file",
			file: fileWith(c1, c2), want: []config.Server{c1, c2},
		},
		{
			name: "runtime adds append in order",
			file: fileWith(c1),
			overrides: []Override{
				{Pool: "checkout", Name: "c9", Server: spec("10.0.0.9:80", 2, false)},
				{Pool: "checkout", Name: "c3", Server: spec("10.0.0.3:80", 1, false)},
			},
			want: []config.Server{c1, srv("c9", "10.0.0.9:80", 2, false), srv("c3", "10.0.0.3:80", 1, false)},
			kept: []Override{
				{Pool: "checkout", Name: "c9", Server: spec("10.0.0.9:80", 2, false)},
				{Pool: "checkout", Name: "c3", Server: spec("10.0.0.3:80", 1, false)},
			},
		},
		{
			name:      "runtime drain and weight of a file server, file unchanged: runtime applies",
			file:      fileWith(c1, c2),
			overrides: []Override{{Pool: "checkout", Name: "c1", Base: spec("10.0.0.1:80", 1, false), Server: spec("10.0.0.1:80", 5, true)}},
			want:      []config.Server{srv("c1", "10.0.0.1:80", 5, true), c2},
			kept:      []Override{{Pool: "checkout", Name: "c1", Base: spec("10.0.0.1:80", 1, false), Server: spec("10.0.0.1:80", 5, true)}},
		},
		{
			name:      "runtime delete",
			file:      fileWith(c1, c2),
			overrides: []Override{{Pool: "checkout", Name: "c1", Base: spec("10.0.0.1:80", 1, false)}},
			want:      []config.Server{c2},
			kept:      []Override{{Pool: "checkout", Name: "c1", Base: spec("10.0.0.1:80", 1, false)}},
		},
		{
			name:      "file changed the weight since: file's weight wins, runtime drain stays",
			file:      fileWith(srv("c1", "10.0.0.1:80", 3, false), c2),
			overrides: []Override{{Pool: "checkout", Name: "c1", Base: spec("10.0.0.1:80", 1, false), Server: spec("10.0.0.1:80", 5, true)}},
			want:      []config.Server{srv("c1", "10.0.0.1:80", 3, true), c2},
			kept:      []Override{{Pool: "checkout", Name: "c1", Base: spec("10.0.0.1:80", 3, false), Server: spec("10.0.0.1:80", 3, true)}},
			notes: []Note{{Pool: "checkout", Server: "c1", Wins: "file",
				Reason: "the config file changed it since the runtime did: the file's weight 3 over the runtime's 5; the runtime's other changes stay"}},
		},
		{
			name: "file now has a server at a runtime-added server's addr: the runtime's is dropped",
			file: fileWith(c1, srv("c5", "10.0.0.9:80", 1, false)),
			overrides: []Override{
				{Pool: "checkout", Name: "c9", Server: spec("10.0.0.9:80", 2, false)},
				{Pool: "checkout", Name: "c3", Server: spec("10.0.0.3:80", 1, false)},
			},
			want: []config.Server{c1, srv("c5", "10.0.0.9:80", 1, false), srv("c3", "10.0.0.3:80", 1, false)},
			kept: []Override{{Pool: "checkout", Name: "c3", Server: spec("10.0.0.3:80", 1, false)}},
			notes: []Note{{Pool: "checkout", Server: "c9", Wins: "file",
				Reason: "server c5 has its addr 10.0.0.9:80; the runtime-added server is dropped (each app server once per pool)"}},
		},
		{
			name: "runtime replaced a file server by one at its addr: both changes stay",
			file: fileWith(c1, c2),
			overrides: []Override{
				{Pool: "checkout", Name: "c9", Server: spec("10.0.0.2:80", 1, false)},
				{Pool: "checkout", Name: "c2", Base: spec("10.0.0.2:80", 1, false)},
			},
			want: []config.Server{c1, srv("c9", "10.0.0.2:80", 1, false)},
			kept: []Override{
				{Pool: "checkout", Name: "c9", Server: spec("10.0.0.2:80", 1, false)},
				{Pool: "checkout", Name: "c2", Base: spec("10.0.0.2:80", 1, false)},
			},
		},
		{
			name:      "file now has the runtime-added server: the file's entry",
			file:      fileWith(c1, srv("c9", "10.0.0.9:8080", 1, false)),
			overrides: []Override{{Pool: "checkout", Name: "c9", Server: spec("10.0.0.9:80", 2, false)}},
			want:      []config.Server{c1, srv("c9", "10.0.0.9:8080", 1, false)},
			notes: []Note{{Pool: "checkout", Server: "c9", Wins: "file",
				Reason: "the config file now has this server itself; its entry replaces the runtime's"}},
		},
		{
			name:      "file removed the server the runtime drained",
			file:      fileWith(c2),
			overrides: []Override{{Pool: "checkout", Name: "c1", Base: spec("10.0.0.1:80", 1, false), Server: spec("10.0.0.1:80", 1, true)}},
			want:      []config.Server{c2},
			notes: []Note{{Pool: "checkout", Server: "c1", Wins: "file",
				Reason: "the config file no longer has this server; the runtime change is dropped"}},
		},
		{
			name:      "pool gone from the file",
			file:      &config.Config{Pools: []config.Pool{{Name: "browse"}}},
			overrides: []Override{{Pool: "checkout", Name: "c9", Server: spec("10.0.0.9:80", 2, false)}},
			notes: []Note{{Pool: "checkout", Server: "c9", Wins: "file",
				Reason: "the pool is no longer in the config file; the runtime change is dropped"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneConfig(tt.file)
			run, kept, notes := Merge(tt.file, State{Version: stateVersion, Overrides: tt.overrides})
			assert.Equal(t, before, tt.file, "Merge must not modify the file config")
			if len(run.Pools) > 0 && run.Pools[0].Name == "checkout" {
				assert.Equal(t, tt.want, run.Pools[0].Servers)
			}
			assert.Equal(t, tt.kept, kept)
			assert.Equal(t, tt.notes, notes)
		})
	}
}

func TestStateSet(t *testing.T) {
	var st State
	base := spec("10.0.0.1:80", 1, false)
	st.set("checkout", "c1", base, spec("10.0.0.1:80", 1, true))
	st.set("checkout", "c9", nil, spec("10.0.0.9:80", 1, false))
	assert.Len(t, st.Overrides, 2)
	st.set("checkout", "c1", base, spec("10.0.0.1:80", 1, false)) // undrain: back to the file
	assert.Equal(t, []Override{{Pool: "checkout", Name: "c9", Server: spec("10.0.0.9:80", 1, false)}}, st.Overrides)
	st.set("checkout", "c9", nil, nil) // delete a runtime-added server: nothing left
	assert.Empty(t, st.Overrides)
}
