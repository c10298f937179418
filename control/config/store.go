package config

// Desired-state stores (state.store).
const (
	// StoreFile keeps desired state in the local state file (state.path):
	// one edge host, the default.
	StoreFile = "file"
	// StoreEtcd keeps it in etcd under state.etcd.prefix, shared by every
	// daemon of a fleet; state.path then caches the last state applied,
	// so a daemon restarted while etcd is down starts from it.
	StoreEtcd = "etcd"
	// DefaultEtcdPrefix is where the edge tier's desired state lives.
	DefaultEtcdPrefix = "/xlb/edge/"
)

// store validates state.store and state.etcd.
func (v *validator) store(fc *fileConfig, cfg *Config) {
	st := &fc.State
	cfg.Store = st.Store
	if cfg.Store == "" {
		cfg.Store = StoreFile
	}
	switch cfg.Store {
	case StoreFile:
		if st.Etcd != nil {
			v.Errorf(p("state", "etcd"), "etcd settings are given but state.store is %q: set state.store: etcd to use them, or remove them", cfg.Store)
		}
	case StoreEtcd:
		if st.Etcd == nil {
			v.Errorf(p("state", "store"), "state.store is etcd but state.etcd (endpoints, prefix, TLS files) is missing")
			return
		}
		ec, probs := st.Etcd.Check(DefaultEtcdPrefix)
		for _, pr := range probs {
			path := p("state", "etcd", pr.Field)
			if pr.Index >= 0 {
				path = append(path, pr.Index)
			}
			v.Errorf(path, "%s", pr.Reason)
		}
		cfg.Etcd = ec
	default:
		v.Errorf(p("state", "store"), "unknown store %q (want file or etcd)", st.Store)
	}
}
