// Package admin runs the proxy's live administration: reloading the config
// file, changing pool membership at runtime (add, drain, undrain, delete,
// weight), keeping those changes in a state file next to the config, and
// the versioned JSON API on the admin unix socket that `xlb pool` and
// `xlb proxy reload` use.
//
// Every change, from a reload or from the API, ends the same way: the file
// config with the runtime overrides merged on top is applied to the proxy
// as one new generation (see proxy.Apply), so servers that stay keep their
// health, ejection and slow-start state and their connections.
package admin
