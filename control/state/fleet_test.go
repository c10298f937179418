package state

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/internal/etcdstore"
)

func TestFleetOpsRoundTrip(t *testing.T) {
	k1 := api.VIPKey{Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, Proto: api.ProtoTCP}
	k2 := api.VIPKey{Addr: netip.MustParseAddr("10.0.0.2"), Port: 443, Proto: api.ProtoTCP}
	var cur Desired
	require.NoError(t, cur.AddVIP(api.VIPSpec{Key: k1, Backends: []api.BackendSpec{{Addr: netip.MustParseAddr("10.1.0.1")}}}))
	require.NoError(t, cur.AddVIP(api.VIPSpec{Key: k2, Backends: []api.BackendSpec{{Addr: netip.MustParseAddr("10.1.0.2")}}}))

	// Seeding: every VIP is created (must not exist).
	ops, err := FleetOps(Desired{}, cur, nil)
	require.NoError(t, err)
	require.Len(t, ops, 2)
	snap := etcdstore.Snapshot{Revision: 7, KVs: map[string]etcdstore.KV{}}
	for i, op := range ops {
		assert.Zero(t, op.ExpectRevision)
		snap.KVs[op.Key] = etcdstore.KV{Key: op.Key, Value: op.Value, ModRevision: int64(5 + i)}
	}
	f, errs := FleetFromSnapshot(snap)
	require.Empty(t, errs)
	assert.True(t, f.Desired.Equal(cur), "what is written reads back the same")
	assert.False(t, f.HasBase)

	// A change to one VIP writes that VIP alone, on its revision; a
	// deletion deletes on its revision.
	next := cur.Clone()
	require.NoError(t, next.SetWeight(k1, netip.MustParseAddr("10.1.0.1"), 4))
	require.NoError(t, next.DeleteVIP(k2))
	ops, err = FleetOps(cur, next, f.Revisions)
	require.NoError(t, err)
	require.Len(t, ops, 2)
	assert.Equal(t, FleetKey(k1), ops[0].Key)
	assert.Equal(t, f.Revisions[FleetKey(k1)], ops[0].ExpectRevision)
	assert.False(t, ops[0].Delete)
	assert.Equal(t, FleetKey(k2), ops[1].Key)
	assert.True(t, ops[1].Delete)
	assert.Equal(t, f.Revisions[FleetKey(k2)], ops[1].ExpectRevision)

	ops, err = FleetOps(cur, cur.Clone(), f.Revisions)
	require.NoError(t, err)
	assert.Empty(t, ops, "no change, no write")
}

func TestFleetFromSnapshotSkipsBadRecords(t *testing.T) {
	snap := etcdstore.Snapshot{Revision: 3, KVs: map[string]etcdstore.KV{
		"vips/10.0.0.1:80/tcp": {Key: "vips/10.0.0.1:80/tcp", Value: []byte(`{"key":"10.0.0.9:80/tcp","mode":"ipip","tableSize":65537}`), ModRevision: 1},
		"vips/10.0.0.2:80/tcp": {Key: "vips/10.0.0.2:80/tcp", Value: []byte(`{not json`), ModRevision: 2},
		"vips/10.0.0.3:80/tcp": {Key: "vips/10.0.0.3:80/tcp", Value: []byte(`{"key":"10.0.0.3:80/tcp","mode":"ipip","tableSize":65537}`), ModRevision: 3},
		"stray":                {Key: "stray", Value: []byte(`x`), ModRevision: 3},
	}}
	f, errs := FleetFromSnapshot(snap)
	assert.Len(t, errs, 3, "mismatched key, bad JSON, unknown key: %v", errs)
	require.Len(t, f.Desired.VIPs, 1)
	assert.Equal(t, "10.0.0.3:80/tcp", f.Desired.VIPs[0].Key.String())
}
