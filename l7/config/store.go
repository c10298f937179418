package config

import "github.com/xlbproject/xlb/internal/etcdstore"

// DefaultEtcdPrefix is where the L7 tier's runtime pool changes live.
const DefaultEtcdPrefix = "/xlb/l7/"

// Store says where runtime pool changes (the overlay on the config file's
// pools) are kept: without etcd, in admin.state_file on this host; with
// it, under etcd's prefix, shared by every L7 host that names the same
// etcd and prefix. admin.state_file then caches the last overlay applied.
type Store struct {
	Etcd *etcdstore.Settings `yaml:"etcd"`

	// EtcdConfig is Etcd checked; filled by Parse.
	EtcdConfig etcdstore.Config `yaml:"-"`
}

func (v *validator) store(s *Store) {
	if s.Etcd == nil {
		return
	}
	ec, probs := s.Etcd.Check(DefaultEtcdPrefix)
	for _, pr := range probs {
		path := at("store", "etcd", pr.Field)
		if pr.Index >= 0 {
			path = append(path, pr.Index)
		}
		v.errorf(path, "store.etcd.%s: %s", pr.Field, pr.Reason)
	}
	s.EtcdConfig = ec
}
